"""The page headers of a Parquet column chunk, read without decompressing anything. Pure Python.

A Parquet file's footer says how big each column chunk is, but not how big one value in it may be: a
1 KB file can hold a page that decompresses to gigabytes. Each page starts with a small header (Thrift
compact protocol) that declares its uncompressed size; readers allocate that much to decompress it
(and fail when the data does not match). Reading the headers first lets the parquet reader refuse
such a page, and size its batches, before pyarrow allocates anything.

Only what that needs is decoded (page type, sizes, value and row counts); every other field is skipped.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import BinaryIO

DATA_PAGE, INDEX_PAGE, DICTIONARY_PAGE, DATA_PAGE_V2 = 0, 1, 2, 3
HEADER_READ = 256  # bytes read at a time while decoding a header (headers are small; statistics may not be)
MAX_HEADER_BYTES = 1 << 20  # a page header larger than this is taken as a broken file
MAX_PAGES = 1 << 20

# Thrift compact protocol type ids
_STOP, _TRUE, _FALSE, _BYTE, _I16, _I32, _I64, _DOUBLE, _BINARY, _LIST, _SET, _MAP, _STRUCT = range(13)


class PageError(ValueError):
    """The page headers cannot be read: the file is broken (or not what its footer says)."""


@dataclass(frozen=True, slots=True)
class Page:
    kind: int  # DATA_PAGE, DICTIONARY_PAGE, DATA_PAGE_V2 or INDEX_PAGE
    uncompressed: int
    compressed: int
    values: int  # values in the page, nulls and list items included (0 when the header does not say)
    rows: int  # rows that start in the page (data page v2 only; 0 otherwise)


def chunk_pages(stream: BinaryIO, *, start: int, size: int) -> list[Page]:
    """The pages of the column chunk that occupies `size` bytes from offset `start`, headers only."""
    pages = []
    position, end = start, start + size
    while position < end:
        if len(pages) >= MAX_PAGES:
            raise PageError("the column chunk has too many pages")
        reader = _Reader(stream, position)
        page = _page_header(reader)
        if page.compressed < 0 or page.uncompressed < 0:
            raise PageError("a page header declares a negative size")
        position = reader.position + page.compressed
        pages.append(page)
    if position != end:
        raise PageError("the pages do not end where the column chunk does")
    return pages


class _Reader:
    """Bytes of the stream from a position on, a little at a time."""

    def __init__(self, stream: BinaryIO, position: int) -> None:
        self.stream = stream
        self.start = position
        self.position = position
        self.buffer = b""
        self.offset = 0  # index in buffer of `position`

    def byte(self) -> int:
        if self.offset >= len(self.buffer):
            self._fill()
        value = self.buffer[self.offset]
        self.offset += 1
        self.position += 1
        return value

    def skip(self, count: int) -> None:
        if count < 0:
            raise PageError("a page header declares a negative length")
        self._check(self.position + count)
        self.position += count
        self.buffer, self.offset = b"", 0

    def _fill(self) -> None:
        self._check(self.position + 1)
        self.stream.seek(self.position)
        self.buffer = self.stream.read(HEADER_READ)
        self.offset = 0
        if not self.buffer:
            raise PageError("the file ends inside a page header")

    def _check(self, position: int) -> None:
        if position - self.start > MAX_HEADER_BYTES:
            raise PageError("a page header is larger than 1 MiB")

    def varint(self) -> int:
        value, shift = 0, 0
        while True:
            byte = self.byte()
            value |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return value
            shift += 7
            if shift > 63:
                raise PageError("a page header has a malformed number")

    def zigzag(self) -> int:
        value = self.varint()
        return (value >> 1) ^ -(value & 1)


def _fields(reader: _Reader):  # type: ignore[no-untyped-def]
    """(field id, type) of each field of a struct, up to its stop byte."""
    field_id = 0
    while True:
        header = reader.byte()
        kind = header & 0x0F
        if kind == _STOP:
            return
        delta = header >> 4
        field_id = field_id + delta if delta else reader.zigzag()
        yield field_id, kind


def _skip(reader: _Reader, kind: int, depth: int = 0) -> None:
    if depth > 32:
        raise PageError("a page header is nested too deeply")
    if kind in (_TRUE, _FALSE):
        return
    if kind == _BYTE:
        reader.byte()
    elif kind in (_I16, _I32, _I64):
        reader.varint()
    elif kind == _DOUBLE:
        reader.skip(8)
    elif kind == _BINARY:
        reader.skip(reader.varint())
    elif kind in (_LIST, _SET):
        header = reader.byte()
        count = header >> 4
        if count == 15:
            count = reader.varint()
        item = header & 0x0F
        for _ in range(count):
            if item in (_TRUE, _FALSE):
                reader.byte()  # a boolean in a list takes a byte
            else:
                _skip(reader, item, depth + 1)
    elif kind == _MAP:
        count = reader.varint()
        if count:
            types = reader.byte()
            for _ in range(count):
                _skip(reader, types >> 4, depth + 1)
                _skip(reader, types & 0x0F, depth + 1)
    elif kind == _STRUCT:
        for _, inner in _fields(reader):
            _skip(reader, inner, depth + 1)
    else:
        raise PageError(f"a page header has an unknown field type {kind}")


def _page_header(reader: _Reader) -> Page:
    """PageHeader: 1 type, 2 uncompressed_page_size, 3 compressed_page_size, 5 data_page_header,
    7 dictionary_page_header, 8 data_page_header_v2 (each of those starts with 1 num_values; v2 has 3 num_rows)."""
    kind = uncompressed = compressed = values = rows = -1
    for field_id, field_type in _fields(reader):
        if field_id in (1, 2, 3) and field_type == _I32:
            number = reader.zigzag()
            if field_id == 1:
                kind = number
            elif field_id == 2:
                uncompressed = number
            else:
                compressed = number
        elif field_id in (5, 7, 8) and field_type == _STRUCT:
            counts = _counts(reader)
            values, rows = counts.get(1, 0), counts.get(3, 0) if field_id == 8 else 0
        else:
            _skip(reader, field_type)
    if -1 in (kind, uncompressed, compressed):
        raise PageError("a page header lacks its type or sizes")
    return Page(kind, uncompressed, compressed, max(values, 0), max(rows, 0))


def _counts(reader: _Reader) -> dict[int, int]:
    """The i32 fields of a data or dictionary page header, by id (the rest skipped)."""
    found = {}
    for field_id, field_type in _fields(reader):
        if field_type == _I32:
            found[field_id] = reader.zigzag()
        else:
            _skip(reader, field_type)
    return found
