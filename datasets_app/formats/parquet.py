"""Parquet: columns prompt and response (required), system, tags (list<string>) and history
(list<struct<role: string, content: string>>). Reading also takes tags and history as text
(JSON, or tags separated by ";"); other columns are ignored. Positions are row numbers from 1.

pyarrow is imported inside the functions so that importing the formats package stays cheap.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any, BinaryIO

from datasets_app.formats import pairs
from datasets_app.formats.records import Problem, Record

if TYPE_CHECKING:
    import pyarrow as pa

COLUMNS = ("prompt", "response", "system", "tags", "history")
ROW_GROUP = 10_000
READ_BATCH = 4_096


def schema() -> pa.Schema:
    import pyarrow as pa

    turn = pa.struct([("role", pa.string()), ("content", pa.string())])
    return pa.schema(
        [
            ("prompt", pa.string()),
            ("response", pa.string()),
            ("system", pa.string()),
            ("tags", pa.list_(pa.string())),
            ("history", pa.list_(turn)),
        ]
    )


def read(stream: BinaryIO) -> Iterator[Record | Problem]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    unreadable = (pa.ArrowException, OSError, ValueError)
    try:
        parquet = pq.ParquetFile(stream)
    except unreadable as error:
        yield Problem(None, "file", "", f"is not a readable parquet file: {error}")
        return
    names = parquet.schema_arrow.names
    missing = [name for name in ("prompt", "response") if name not in names]
    if missing:
        found = ", ".join(names) or "none"
        yield Problem(None, "file", "", f"has no {' or '.join(missing)} column (found columns: {found})")
        return
    columns = [name for name in COLUMNS if name in names]
    row = 0
    try:
        for batch in parquet.iter_batches(batch_size=READ_BATCH, columns=columns):
            values = [column.to_pylist() for column in batch.columns]
            for cells in zip(*values, strict=True):
                row += 1
                result = pairs.from_object(dict(zip(columns, cells, strict=True)), row, "row", text_cells=True)
                if type(result) is Record:
                    yield result
                else:
                    yield from result
    except unreadable as error:
        yield Problem(None, "file", "", f"could not be read after row {row}: {error}")


def write(records: Iterable[Record]) -> Iterator[bytes]:
    """Row groups of ROW_GROUP records, each yielded once written; the footer last."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table_schema = schema()
    sink = _Sink()
    writer = pq.ParquetWriter(sink, table_schema)
    columns = _empty_columns()
    for record in records:
        _append(columns, record)
        if len(columns["prompt"]) >= ROW_GROUP:
            writer.write_batch(pa.RecordBatch.from_pydict(columns, schema=table_schema))
            columns = _empty_columns()
            yield sink.take()
    if columns["prompt"]:
        writer.write_batch(pa.RecordBatch.from_pydict(columns, schema=table_schema))
    writer.close()
    yield sink.take()


def _empty_columns() -> dict[str, list[Any]]:
    return {name: [] for name in COLUMNS}


def _append(columns: dict[str, list[Any]], record: Record) -> None:
    columns["prompt"].append(record.prompt)
    columns["response"].append(record.response)
    columns["system"].append(record.system)
    columns["tags"].append(record.tags)
    columns["history"].append(record.history)


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
