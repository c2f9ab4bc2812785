"""Pairs as CSV: a header naming prompt and response, optionally system, tags and history.

Reading: the header may use ",", ";" or tab, any column order and letter case; other columns are
ignored. tags is a JSON list or names separated by ";"; history is a JSON list of turns. A row is
placed at the line where it starts (quoted text can span lines).
Writing: header prompt,response,system,tags,history with tags and history as JSON (empty cells when
empty). Text is kept exactly, newlines, quotes and commas included; nothing is escaped against
spreadsheet formulas, because that would change the text.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator
from typing import BinaryIO

from datasets_app.formats import pairs
from datasets_app.formats.jsonstream import BOM, CHUNK_CHARS, CHUNK_RECORDS, encode
from datasets_app.formats.records import Problem, Record

COLUMNS = ("prompt", "response", "system", "tags", "history")
DELIMITERS = (",", ";", "\t")
# The csv module refuses fields over 128 KiB by default; long answers are normal here.
FIELD_LIMIT = 256 << 20


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


def read(stream: BinaryIO) -> Iterator[Record | Problem]:
    csv.field_size_limit(max(csv.field_size_limit(), FIELD_LIMIT))
    lines = _Lines(stream)
    header = next((line for line in lines if line.strip()), None)
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
        try:
            row = next(reader)
        except StopIteration:
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


class _Lines:
    """Decoded lines of a binary stream, counted; undecodable ones are noted, not raised."""

    def __init__(self, stream: BinaryIO) -> None:
        self._raw = iter(stream.readline, b"")
        self.number = 0
        self.bad: list[int] = []

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> str:
        raw = next(self._raw)
        self.number += 1
        if self.number == 1:
            raw = raw.removeprefix(BOM)
        try:
            return raw.decode()
        except UnicodeDecodeError:
            self.bad.append(self.number)
            return raw.decode(errors="replace")


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
