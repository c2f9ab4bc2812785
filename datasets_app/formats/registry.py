"""The format names, and reading and writing by name."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import BinaryIO

from datasets_app.formats import alpaca, csvpairs, openai, pairs, parquet, sharegpt
from datasets_app.formats.detect import PARQUET_MAGIC, detect_format
from datasets_app.formats.jsonstream import BOM, HEAD_SIZE, first_char, peek
from datasets_app.formats.records import Problem, ReadLimits, Record, UnknownFormat

IMPORT_FORMATS = ("pairs", "alpaca", "sharegpt", "openai", "parquet")
EXPORT_FORMATS = ("pairs", "csv", "alpaca", "sharegpt", "openai", "parquet")
EXPORT_CONTENT_TYPES = {
    "pairs": "application/jsonl",
    "csv": "text/csv; charset=utf-8",
    "alpaca": "application/json",
    "sharegpt": "application/json",
    "openai": "application/jsonl",
    "parquet": "application/vnd.apache.parquet",
}
EXPORT_EXTENSIONS = {
    "pairs": "jsonl",
    "csv": "csv",
    "alpaca": "json",
    "sharegpt": "json",
    "openai": "jsonl",
    "parquet": "parquet",
}


def _read_pairs(stream: BinaryIO, limits: ReadLimits) -> Iterator[Record | Problem]:
    if first_char(peek(stream)) in ("[", "{"):
        return pairs.read(stream, limits)
    return csvpairs.read(stream, limits)


Reader = Callable[[BinaryIO, ReadLimits], Iterator[Record | Problem]]
_READERS: dict[str, Reader] = {
    "pairs": _read_pairs,
    "csv": csvpairs.read,  # not in IMPORT_FORMATS: lets a caller insist on CSV
    "alpaca": alpaca.read,
    "sharegpt": sharegpt.read,
    "openai": openai.read,
    "parquet": parquet.read,
}
_WRITERS = {
    "pairs": pairs.write,
    "csv": csvpairs.write,
    "alpaca": alpaca.write,
    "sharegpt": sharegpt.write,
    "openai": openai.write,
    "parquet": parquet.write,
}


def read_records(
    stream: BinaryIO, fmt: str | None = None, filename: str = "", limits: ReadLimits | None = None
) -> Iterator[Record | Problem]:
    """Records, and Problems for what cannot be read, from a seekable binary stream.

    A lazy iterator: it reads as it goes, so memory does not grow with the file, and it carries
    on after a problem. `limits` bounds what one record (and a compressed file) may take in memory:
    a record over them is a Problem, never read whole. Raises UnknownFormat (now, not while iterating) for a format name that is
    not known or, when fmt is None, for content whose format cannot be detected.
    """
    if fmt is not None and fmt not in _READERS:
        raise UnknownFormat(f"unknown import format {fmt!r} (expected {', '.join(IMPORT_FORMATS)})")
    head = peek(stream)
    if len(head) < HEAD_SIZE and not head.removeprefix(BOM).strip():
        return iter([Problem(None, "file", "", "the file is empty")])
    if fmt is None:
        fmt = detect_format(head, filename)
    elif fmt != "parquet" and head.startswith(PARQUET_MAGIC):
        return iter([Problem(None, "file", "", f"is a parquet file, not {fmt}")])
    return _not_empty(_READERS[fmt](stream, limits or ReadLimits()))


def _not_empty(items: Iterator[Record | Problem]) -> Iterator[Record | Problem]:
    """The items, or a file problem when there are none."""
    for item in items:
        yield item
        break
    else:
        yield Problem(None, "file", "", "the file has no records")
        return
    yield from items


def write_records(records: Iterable[Record], fmt: str) -> Iterator[bytes]:
    """The file in `fmt`, as byte chunks written as the records are consumed.

    Raises UnknownFormat (now, not while iterating) for a format name that is not known.
    """
    if fmt not in _WRITERS:
        raise UnknownFormat(f"unknown export format {fmt!r} (expected {', '.join(EXPORT_FORMATS)})")
    return _WRITERS[fmt](records)
