"""Pairs as CSV: a header naming prompt and response, optionally system, tags and history.

Reading: the header may use ",", ";" or tab, any column order and letter case; other columns are
ignored. tags is a JSON list or names separated by ";"; history is a JSON list of turns (as in pairs,
weights included). A row is
placed at the line where it starts (quoted text can span lines). A row larger than
`ReadLimits.record_bytes` is reported with the column it ran out in, and ends the read (its end cannot
be found without holding it); no line or cell is ever held past that size.
Writing: header prompt,response,system,tags,history with tags and history as JSON (empty cells when
empty). Text is kept exactly, newlines, quotes and commas included; nothing is escaped against
spreadsheet formulas, because that would change the text.
"""

from __future__ import annotations

import codecs
import csv
import io
from collections.abc import Iterable, Iterator
from typing import BinaryIO

from datasets_app.formats import pairs
from datasets_app.formats.jsonstream import BOM, CHUNK_CHARS, CHUNK_RECORDS, encode, over_limit
from datasets_app.formats.records import Problem, ReadLimits, Record

COLUMNS = ("prompt", "response", "system", "tags", "history")
DELIMITERS = (",", ";", "\t")


def header_names(line: str, delimiter: str = ",") -> list[str]:
    try:
        row = next(csv.reader([line], delimiter=delimiter), [])
    except csv.Error:  # e.g. a stray carriage return; the names are still worth showing
        row = line.split(delimiter)
    return [name.strip().lower() for name in row]


def header_delimiter(line: str) -> str | None:
    """The delimiter that makes `line` a header with prompt and response; None if none does."""
    for delimiter in DELIMITERS:
        names = header_names(line, delimiter)
        if "prompt" in names and "response" in names:
            return delimiter
    return None


def read(stream: BinaryIO, limits: ReadLimits | None = None) -> Iterator[Record | Problem]:
    limit = (limits or ReadLimits()).record_bytes
    # The csv module refuses cells over 128 KiB by default; long answers are normal here. A cell is never
    # larger than its row, which _Lines bounds, so this limit is only a backstop.
    csv.field_size_limit(limit + 1)
    lines = _Lines(stream, limit)
    try:
        header = next((line for line in lines if line.strip()), None)
    except _RowTooLong:
        yield Problem(None, "file", "", f"the header line {over_limit(limit)}")
        return
    if header is None:
        yield Problem(None, "file", "", "the file is empty")
        return
    if lines.bad:
        yield Problem(lines.number, "line", "", "is not valid UTF-8")
        return
    delimiter = header_delimiter(header)
    if delimiter is None:
        found = ", ".join(header_names(header)) or "none"
        message = f"the CSV header needs prompt and response columns (found columns: {found})"
        yield Problem(None, "file", "", message)
        return
    yield from _rows(lines, header_names(header, delimiter), delimiter)


def _rows(lines: _Lines, names: list[str], delimiter: str) -> Iterator[Record | Problem]:
    columns = {name: names.index(name) for name in COLUMNS if name in names}
    width = len(names)
    reader = csv.reader(lines, delimiter=delimiter)
    while True:
        start = lines.number + 1
        lines.new_row()
        try:
            row = next(reader)
        except StopIteration:
            return
        except _RowTooLong:
            column = lines.column_at_cut(delimiter)
            field = names[column] if column < width else ""
            yield Problem(start, "line", field, f"{over_limit(lines.limit)}; nothing after it was read")
            return
        except csv.Error as error:
            lines.bad.clear()
            yield Problem(start, "line", "", f"is not valid CSV: {error}")
            continue
        if lines.bad:
            yield Problem(lines.bad[0], "line", "", "is not valid UTF-8")
            lines.bad.clear()
        elif len(row) == width:
            result = pairs.from_object(
                {name: row[index] for name, index in columns.items()}, start, "line", text_cells=True
            )
            if type(result) is Record:
                yield result
            else:
                yield from result
        elif row and (len(row) > 1 or row[0].strip()):
            message = f"has {len(row)} fields, expected {width} as in the header"
            yield Problem(start, "line", "", message)


class _RowTooLong(Exception):
    """A row (or line) is larger than the limit."""


class _Lines:
    """Decoded lines of a binary stream, counted; undecodable ones are noted, not raised.

    The lines of one row together may be at most `limit` bytes: past that, _RowTooLong (the csv
    reader passes it on), so neither a line nor a quoted cell spanning lines grows past it.
    """

    def __init__(self, stream: BinaryIO, limit: int) -> None:
        self._stream = stream
        self.limit = limit
        self.number = 0
        self.bad: list[int] = []
        self._offset = 0  # bytes read so far
        self._row_offset = 0  # where the current row starts
        self._row_bytes = 0

    def __iter__(self) -> _Lines:
        return self

    def new_row(self) -> None:
        self._row_offset, self._row_bytes = self._offset, 0

    def __next__(self) -> str:
        raw = self._stream.readline(self.limit - self._row_bytes + 1)
        if not raw:
            raise StopIteration
        self.number += 1
        self._offset += len(raw)
        self._row_bytes += len(raw)
        if self._row_bytes > self.limit:
            raise _RowTooLong
        if self.number == 1:
            raw = raw.removeprefix(BOM)
        try:
            return raw.decode()
        except UnicodeDecodeError:
            self.bad.append(self.number)
            return raw.decode(errors="replace")

    def column_at_cut(self, delimiter: str) -> int:
        """Which column (from 0) the row that ran over the limit was in when it did: the row is read again
        from its start, a piece at a time, counting delimiters outside quotes (a doubled quote toggles twice)."""
        self._stream.seek(self._row_offset)
        column, quoted, left = 0, False, self.limit
        decoder = codecs.getincrementaldecoder("utf-8")("replace")
        while left > 0:
            piece = self._stream.read(min(left, 1 << 16))
            if not piece:
                break
            left -= len(piece)
            for index, part in enumerate(decoder.decode(piece).split('"')):
                if index:
                    quoted = not quoted
                if not quoted:
                    column += part.count(delimiter)
        return column


def write(records: Iterable[Record]) -> Iterator[bytes]:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    count = 0
    for record in records:
        writer.writerow(_row(record))
        count += 1
        if count >= CHUNK_RECORDS or buffer.tell() >= CHUNK_CHARS:
            yield buffer.getvalue().encode()
            buffer.seek(0)
            buffer.truncate()
            count = 0
    if buffer.tell():
        yield buffer.getvalue().encode()


def _row(record: Record) -> tuple[str, str, str, str, str]:
    tags = encode(record.tags) if record.tags else ""
    history = encode(record.history) if record.history else ""
    return record.prompt, record.response, record.system, tags, history
