"""Parquet: columns prompt and response (required), system, tags (list<string>) and history
(list<struct<role: string, content: string, weight: int8>>, weight null on a turn without one; a
history struct without weight is read too). Reading also takes tags and history as text
(JSON, or tags separated by ";"); other columns are ignored. Positions are row numbers from 1.
Reading never decompresses more than the limits allow: see `read` and parquet_pages.

Preference pairs (`read_preference`, `write_preference`): TRL's columns prompt, chosen and rejected instead of
prompt and response, the rest the same; a row is read as a line of trl is, so prompt, chosen and rejected may
also be lists of messages (TRL's conversational form, as the Hugging Face Hub holds many preference datasets).

pyarrow is imported inside the functions so that importing the formats package stays cheap.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, BinaryIO

from datasets_app.formats import pairs, trl
from datasets_app.formats.parquet_pages import DATA_PAGE, Page, PageError, chunk_pages
from datasets_app.formats.records import Problem, ReadLimits, Record

if TYPE_CHECKING:
    import pyarrow as pa

COLUMNS = ("prompt", "response", "system", "tags", "history")
PREFERENCE_COLUMNS = ("prompt", "chosen", "rejected", "system", "tags", "history")
ROW_GROUP = 10_000
READ_BATCH = 4_096
# Reading: a page may decompress to at most max(PAGE_FLOOR, ReadLimits.record_bytes) bytes (writers cut pages
# at about 1 MiB, so only a value that big makes a bigger one); a batch's values to at most BATCH_BYTES.
PAGE_FLOOR = 8 << 20
BATCH_BYTES = 64 << 20


def schema(columns: tuple[str, ...] = COLUMNS) -> pa.Schema:
    import pyarrow as pa

    turn = pa.struct([("role", pa.string()), ("content", pa.string()), ("weight", pa.int8())])
    types = {"tags": pa.list_(pa.string()), "history": pa.list_(turn)}
    return pa.schema([(name, types.get(name, pa.string())) for name in columns])


@dataclass(frozen=True)
class _Layout:
    """What the columns of one kind of file are, and how a row becomes a Record."""

    columns: tuple[str, ...]
    required: tuple[str, ...]
    build: Callable[..., Record | list[Problem]]
    other: tuple[str, ...]  # columns that say the file holds the other kind of pairs
    other_hint: str


_PAIRS = _Layout(COLUMNS, ("prompt", "response"), pairs.from_object, ("chosen", "rejected"),
                 "it holds preference pairs (chosen and rejected): import it into a preference dataset")  # fmt: skip
_PREFERENCE = _Layout(PREFERENCE_COLUMNS, ("chosen", "rejected"), trl.from_object, ("response",),
                      "it holds plain pairs (prompt and response): import it into a dataset that is not of the "
                      "preference kind")  # fmt: skip


def read(stream: BinaryIO, limits: ReadLimits | None = None) -> Iterator[Record | Problem]:
    """Rows as records. Before a row group is read, its page headers are: a page that would decompress to
    more than the page limit is reported (column and rows) and ends the read, unread; the rest is read in
    batches small enough that even the largest pages fit the batch budget, and the whole file may decode
    to at most `limits.decoded_bytes`."""
    return _read(stream, limits or ReadLimits(), _PAIRS)


def read_preference(stream: BinaryIO, limits: ReadLimits | None = None) -> Iterator[Record | Problem]:
    """Rows of preference pairs (columns chosen and rejected, and prompt unless TRL's implicit prompt), read as
    `read` reads."""
    return _read(stream, limits or ReadLimits(), _PREFERENCE)


def _read(stream: BinaryIO, limits: ReadLimits, layout: _Layout) -> Iterator[Record | Problem]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    unreadable = (pa.ArrowException, OSError, ValueError, PageError)
    try:
        parquet = pq.ParquetFile(stream, buffer_size=1 << 20)
    except unreadable as error:
        yield Problem(None, "file", "", f"is not a readable parquet file: {error}")
        return
    names = parquet.schema_arrow.names
    missing = [name for name in layout.required if name not in names]
    if missing:
        found = ", ".join(names) or "none"
        hint = f"; {layout.other_hint}" if all(name in names for name in layout.other) else ""
        yield Problem(None, "file", "", f"has no {' or '.join(missing)} column (found columns: {found}){hint}")
        return
    if limits.records is not None and parquet.metadata.num_rows > limits.records:
        message = f"has {parquet.metadata.num_rows} rows; at most {limits.records} can be imported at once"
        yield Problem(None, "file", "", message)
        return
    columns = [name for name in layout.columns if name in names]
    row = 0
    decoded = 0
    try:
        for group in range(parquet.metadata.num_row_groups):
            plan = _plan(parquet.metadata.row_group(group), stream, columns, limits, first_row=row + 1)
            if isinstance(plan, Problem):
                yield plan
                return
            for batch in parquet.iter_batches(batch_size=plan, row_groups=[group], columns=columns):
                decoded += batch.nbytes
                if limits.decoded_bytes is not None and decoded > limits.decoded_bytes:
                    mb = limits.decoded_bytes / 2**20
                    yield Problem(
                        None, "file", "", f"decompresses to more than {mb:.0f} MB; it was not read past row {row}"
                    )
                    return
                values = [column.to_pylist() for column in batch.columns]
                for cells in zip(*values, strict=True):
                    row += 1
                    result = layout.build(dict(zip(columns, cells, strict=True)), row, "row", text_cells=True)
                    if type(result) is Record:
                        yield result
                    else:
                        yield from result
    except unreadable as error:
        yield Problem(None, "file", "", f"could not be read after row {row}: {error}")


def _plan(metadata: Any, stream: BinaryIO, columns: list[str], limits: ReadLimits, *, first_row: int) -> int | Problem:
    """The batch size (rows) for one row group from its page headers, or the Problem of a page over the limit.

    A value is never larger than the page holding it (or its dictionary page), so a batch of n rows holds
    at most n times the largest page of each column: n is chosen to keep that under BATCH_BYTES.
    """
    page_limit = max(PAGE_FLOOR, limits.record_bytes)
    rows = metadata.num_rows
    largest = 0
    for index in range(metadata.num_columns):
        chunk = metadata.column(index)
        name = chunk.path_in_schema.split(".")[0]
        if name not in columns:
            continue
        offsets = [chunk.data_page_offset, chunk.dictionary_page_offset if chunk.has_dictionary_page else None]
        start = min(offset for offset in offsets if offset)
        pages = chunk_pages(stream, start=start, size=chunk.total_compressed_size)
        flat = "." not in chunk.path_in_schema
        first = first_row
        for page in pages:
            span = page.rows or (page.values if flat and page.kind == DATA_PAGE else 0)
            if page.uncompressed > page_limit:
                return _page_problem(name, page, page_limit, first if span else first_row, span or rows)
            first += span
        largest += max((page.uncompressed for page in pages), default=0)
    return max(1, min(READ_BATCH, BATCH_BYTES // max(largest, 1)))


def _page_problem(column: str, page: Page, limit: int, first: int, count: int) -> Problem:
    rows = f"row {first} holds" if count == 1 else f"rows {first} to {first + count - 1} hold"
    message = (
        f"is over the limit: {rows} a page that decompresses to {page.uncompressed} bytes "
        f"(at most {limit} are read); the file was not read further"
    )
    return Problem(first, "row", column, message)


def write(records: Iterable[Record]) -> Iterator[bytes]:
    """Row groups of ROW_GROUP records, each yielded once written; the footer last."""
    return _write(records, COLUMNS)


def write_preference(records: Iterable[Record]) -> Iterator[bytes]:
    """Preference pairs in the columns prompt, chosen, rejected, system, tags and history, written as `write` writes."""
    return _write(records, PREFERENCE_COLUMNS)


def _write(records: Iterable[Record], names: tuple[str, ...]) -> Iterator[bytes]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table_schema = schema(names)
    sink = _Sink()
    writer = pq.ParquetWriter(sink, table_schema)
    columns = _empty_columns(names)
    for record in records:
        _append(columns, record)
        if len(columns["prompt"]) >= ROW_GROUP:
            writer.write_batch(pa.RecordBatch.from_pydict(columns, schema=table_schema))
            columns = _empty_columns(names)
            yield sink.take()
    if columns["prompt"]:
        writer.write_batch(pa.RecordBatch.from_pydict(columns, schema=table_schema))
    writer.close()
    yield sink.take()


def _empty_columns(names: tuple[str, ...]) -> dict[str, list[Any]]:
    return {name: [] for name in names}


_VALUES = {"chosen": "response"}  # a column's Record attribute, where the names differ


def _append(columns: dict[str, list[Any]], record: Record) -> None:
    for name, values in columns.items():
        values.append(getattr(record, _VALUES.get(name, name)))


class _Sink:
    """A write-only file that hands over what was written so far, so memory stays small.

    tell() counts every byte ever written: the parquet footer records offsets with it.
    """

    def __init__(self) -> None:
        self._parts: list[bytes] = []
        self._written = 0
        self.closed = False

    def write(self, data: Any) -> int:
        chunk = bytes(data)
        self._parts.append(chunk)
        self._written += len(chunk)
        return len(chunk)

    def tell(self) -> int:
        return self._written

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True

    def writable(self) -> bool:
        return True

    def take(self) -> bytes:
        data = b"".join(self._parts)
        self._parts = []
        return data
