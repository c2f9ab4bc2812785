"""The format names, and reading and writing by name.

Plain pairs and preference pairs (a chosen and a rejected answer) have formats of their own; "parquet" is both,
with the columns of the kind asked for (`preference`). `kind_mismatch` says why a format does not fit a kind.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import BinaryIO

from datasets_app.formats import alpaca, csvpairs, openai, openai_preference, pairs, parquet, sharegpt, trl
from datasets_app.formats.detect import PARQUET_MAGIC, detect_format
from datasets_app.formats.jsonstream import BOM, HEAD_SIZE, first_char, peek
from datasets_app.formats.records import Problem, ReadLimits, Record, UnknownFormat

IMPORT_FORMATS = ("pairs", "alpaca", "sharegpt", "openai", "parquet")
EXPORT_FORMATS = ("pairs", "csv", "alpaca", "sharegpt", "openai", "parquet")
# A preference dataset's formats, for import and export alike ("trl" reads both of TRL's forms).
PREFERENCE_FORMATS = ("trl", "trl_chat", "openai_preference", "parquet")
EXPORT_CONTENT_TYPES = {
    "pairs": "application/jsonl",
    "csv": "text/csv; charset=utf-8",
    "alpaca": "application/json",
    "sharegpt": "application/json",
    "openai": "application/jsonl",
    "parquet": "application/vnd.apache.parquet",
    "trl": "application/jsonl",
    "trl_chat": "application/jsonl",
    "openai_preference": "application/jsonl",
}
EXPORT_EXTENSIONS = {
    "pairs": "jsonl",
    "csv": "csv",
    "alpaca": "json",
    "sharegpt": "json",
    "openai": "jsonl",
    "parquet": "parquet",
    "trl": "jsonl",
    "trl_chat": "jsonl",
    "openai_preference": "jsonl",
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
_PREFERENCE_READERS: dict[str, Reader] = {
    "trl": trl.read,
    "trl_chat": trl.read,
    "openai_preference": openai_preference.read,
    "parquet": parquet.read_preference,
}
_PREFERENCE_WRITERS = {
    "trl": trl.write,
    "trl_chat": trl.write_chat,
    "openai_preference": openai_preference.write,
    "parquet": parquet.write_preference,
}


def kind_mismatch(fmt: str, *, preference: bool) -> str | None:
    """Why a known format does not fit the kind of dataset (`preference` or not); None when it fits."""
    if preference and fmt not in PREFERENCE_FORMATS:
        return (
            f"the {fmt} format holds plain prompt/response pairs, and this is a preference dataset (each pair has a "
            f"chosen and a rejected answer): use {', '.join(PREFERENCE_FORMATS[:-1])}, or parquet with chosen and "
            "rejected columns"
        )
    if not preference and fmt not in (*EXPORT_FORMATS, *IMPORT_FORMATS):
        return (
            f"the {fmt} format holds preference pairs (a chosen and a rejected answer), and this is not a preference "
            "dataset: use a preference dataset for them"
        )
    return None


def read_records(
    stream: BinaryIO,
    fmt: str | None = None,
    filename: str = "",
    limits: ReadLimits | None = None,
    *,
    preference: bool = False,
) -> Iterator[Record | Problem]:
    """Records, and Problems for what cannot be read, from a seekable binary stream.

    A lazy iterator: it reads as it goes, so memory does not grow with the file, and it carries
    on after a problem. `limits` bounds what one record (and a compressed file) may take in memory:
    a record over them is a Problem, never read whole. Raises UnknownFormat (now, not while iterating) for a format name that is
    not known or, when fmt is None, for content whose format cannot be detected; and for a format of the other
    kind of pairs than `preference` asks for (preference pairs have a `rejected` answer).
    """
    readers = _PREFERENCE_READERS if preference else _READERS
    if fmt is not None and fmt not in readers:
        known = PREFERENCE_FORMATS if preference else IMPORT_FORMATS
        raise UnknownFormat(kind_mismatch(fmt, preference=preference) if fmt in (*_READERS, *_PREFERENCE_READERS)
                            else f"unknown import format {fmt!r} (expected {', '.join(known)})")  # fmt: skip
    head = peek(stream)
    if len(head) < HEAD_SIZE and not head.removeprefix(BOM).strip():
        return iter([Problem(None, "file", "", "the file is empty")])
    if fmt is None:
        fmt = detect_format(head, filename)
        if fmt not in readers:
            raise UnknownFormat(kind_mismatch(fmt, preference=preference))
    elif fmt != "parquet" and head.startswith(PARQUET_MAGIC):
        return iter([Problem(None, "file", "", f"is a parquet file, not {fmt}")])
    return _not_empty(readers[fmt](stream, limits or ReadLimits()))


def _not_empty(items: Iterator[Record | Problem]) -> Iterator[Record | Problem]:
    """The items, or a file problem when there are none."""
    for item in items:
        yield item
        break
    else:
        yield Problem(None, "file", "", "the file has no records")
        return
    yield from items


def write_records(records: Iterable[Record], fmt: str, *, preference: bool = False) -> Iterator[bytes]:
    """The file in `fmt`, as byte chunks written as the records are consumed; `preference`: preference pairs.

    Raises UnknownFormat (now, not while iterating) for a format name that is not known, or not of the kind.
    """
    writers = _PREFERENCE_WRITERS if preference else _WRITERS
    if fmt not in writers:
        mismatch = kind_mismatch(fmt, preference=preference) if fmt in (*_WRITERS, *_PREFERENCE_WRITERS) else None
        known = PREFERENCE_FORMATS if preference else EXPORT_FORMATS
        raise UnknownFormat(mismatch or f"unknown export format {fmt!r} (expected {', '.join(known)})")
    return writers[fmt](records)
