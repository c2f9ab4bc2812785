"""Reading JSON Lines and JSON arrays a record at a time, and writing them in chunks.

Memory stays flat however big the file: JSON Lines is read line by line; a JSON array is decoded
from a sliding text buffer, one element at a time (the C scanner behind `raw_decode`). A bad element is
skipped by finding where it ends (brackets and strings counted, see `element_end`), so the
records after it are still read. A line or element over `ReadLimits.record_bytes` is reported with the
field it was in when the limit ran out, and never held whole: the rest of a long line is skipped in small
pieces; a long array element ends the read (its end cannot be found without holding it).
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Callable, Iterable, Iterator
from typing import Any, BinaryIO

from datasets_app.formats.checks import invalid_json_message
from datasets_app.formats.records import Problem, ReadLimits, Record

HEAD_SIZE = 1 << 16
BOM = b"\xef\xbb\xbf"
CHUNK_CHARS = 1 << 16  # write: yield about every 64 KiB ...
CHUNK_RECORDS = 500  # ... or every 500 records, whichever comes first
READ_SIZE = 1 << 16

# (decoded value, position, unit) of an array element
Item = tuple[Any, int, str]
Builder = Callable[[Any, int, str], "Record | list[Problem]"]

_DECODER = json.JSONDecoder()
# decode() without its whitespace regexes and wrapper, twice as fast; StopIteration for no value
_SCAN = _DECODER.scan_once
_ENCODER = json.JSONEncoder(ensure_ascii=False)
_SPACE = re.compile(r"[ \t\n\r]*")
_ESCAPED_BYTE = re.compile("[\udc80-\udcff]")  # an undecodable byte, under "surrogateescape"
# A whole string, an opening quote whose string runs past the text, or a bracket or comma.
_TOKEN = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|"|[][{},]', re.DOTALL)
_KEY_TOKEN = re.compile(r'("[^"\\]*(?:\\.[^"\\]*)*")(\s*:)?|[][{}]', re.DOTALL)


def peek(stream: BinaryIO) -> bytes:
    """The first HEAD_SIZE bytes; the stream is left at the start."""
    head = stream.read(HEAD_SIZE)
    stream.seek(0)
    return head


def first_char(head: bytes) -> str:
    """The first character that is not a BOM or whitespace; "" when there is none."""
    content = head.removeprefix(BOM).lstrip()
    return chr(content[0]) if content else ""


def read_objects(stream: BinaryIO, build: Builder, limits: ReadLimits | None = None) -> Iterator[Record | Problem]:
    """Records built by `build(value, position, unit)` from each element of a JSON array when
    the content starts with "[", else from each line of JSON Lines."""
    limits = limits or ReadLimits()
    if first_char(peek(stream)) == "[":
        return read_array(stream, build, limits)
    return read_lines(stream, build, limits)


def over_limit(limit: int) -> str:
    """The message for a record larger than ReadLimits.record_bytes (the problem names the field it ran out in)."""
    return f"is over the limit: the record is larger than {limit / 2**20:.1f} MB, more than a pair can hold"


def read_lines(stream: BinaryIO, build: Builder, limits: ReadLimits | None = None) -> Iterator[Record | Problem]:
    """A record from each line, numbered from 1; blank lines are skipped."""
    limit = (limits or ReadLimits()).record_bytes
    number = 0
    while True:
        # readline, not iter(stream): Django's File.__iter__ also splits lines at a bare "\r".
        raw = stream.readline(limit + 1)
        if not raw:
            return
        number += 1
        if len(raw) > limit and not raw.endswith(b"\n"):
            yield Problem(number, "line", _field_at_end(raw.decode(errors="ignore")), over_limit(limit))
            _skip_line(stream)
            continue
        if raw.isspace():
            continue
        try:
            line = raw.decode()
        except UnicodeDecodeError:
            yield Problem(number, "line", "", "is not valid UTF-8")
            continue
        try:
            value, end = _SCAN(line, 0)
            if end != len(line) and not line[end:].isspace():
                raise ValueError
        except (StopIteration, ValueError, RecursionError):
            value = _slow_decode(line, number)
            if type(value) is Problem:
                yield value
                continue
        result = build(value, number, "line")
        if type(result) is Record:
            yield result
        else:
            yield from result


def _skip_line(stream: BinaryIO) -> None:
    """Read past the rest of the current line, a piece at a time."""
    while True:
        piece = stream.readline(READ_SIZE)
        if not piece or piece.endswith(b"\n"):
            return


def _field_at_end(text: str, start: int | None = None) -> str:
    """The top-level key whose value runs to the end of `text` (the field that was too long), or ""."""
    if start is None:
        start = len(text) - len(text.lstrip("\ufeff \t\r\n"))
    if not text.startswith("{", start):
        return ""
    keys = top_level_keys(text, start)
    return keys[-1] if keys else ""


def _slow_decode(line: str, number: int) -> Any:
    """The value of a line with a BOM or surrounding space, or the Problem that it is not JSON."""
    if number == 1:
        line = line.removeprefix("\ufeff")
    try:
        return _DECODER.decode(line)
    except (ValueError, RecursionError) as error:
        return Problem(number, "line", "", invalid_json_message(error))


def read_array(stream: BinaryIO, build: Builder, limits: ReadLimits | None = None) -> Iterator[Record | Problem]:
    """A record from each element of a top-level JSON array, numbered from 1."""
    reader = _ArrayReader(stream, (limits or ReadLimits()).record_bytes)
    if reader.next_char() != "[":
        yield Problem(None, "file", "", "is not a JSON array")
        return
    reader.pos += 1
    number = 0
    skip = False  # the element after a missing comma was reported already
    char = reader.next_char()
    while char != "]":
        if not char:
            yield Problem(None, "file", "", "invalid JSON: the file ends before the closing ']'")
            return
        number += 1
        item = reader.element(number)
        if skip:
            pass
        elif type(item) is Problem:
            yield item
        else:
            result = build(*item)
            if type(result) is Record:
                yield result
            else:
                yield from result
        if reader.broken:
            return
        skip = False
        char = reader.next_char()
        if char == ",":
            reader.pos += 1
            char = reader.next_char()  # a trailing comma before "]" is let through
        elif char and char != "]":
            where = reader.where(reader.pos)
            yield Problem(number + 1, "record", "", f"invalid JSON: Expecting ',' delimiter ({where})")
            skip = True
    reader.pos += 1
    if reader.next_char():
        where = reader.where(reader.pos)
        yield Problem(None, "file", "", f"invalid JSON: unexpected text after the closing ']' ({where})")


class _ArrayReader:
    """A sliding window of decoded text over a binary stream, with line/column bookkeeping."""

    def __init__(self, stream: BinaryIO, limit: int) -> None:
        self.stream = stream
        self.limit = limit  # the largest element held, in characters (at least that many bytes)
        # surrogateescape keeps bad bytes as \udc80-\udcff so the record holding them can be
        # reported while decoding carries on; they are looked for only once a chunk had one.
        self.decoder = codecs.getincrementaldecoder("utf-8")("surrogateescape")
        self.buf = ""
        self.pos = 0
        self.eof = False
        self.bad_bytes = False
        self.broken = False  # an element never ended; nothing after it can be trusted
        self.lines_dropped = 0
        self.column_base = 0  # characters of the current line already dropped
        self.more()
        if self.buf.startswith("\ufeff"):
            self.pos = 1

    def more(self, size: int = 0) -> bool:
        """Append the next chunk (READ_SIZE bytes unless told), dropping text before pos;
        False when the file was done."""
        if self.eof:
            return False
        data = self.stream.read(size or READ_SIZE)
        self.eof = not data
        text = self.decoder.decode(data, final=self.eof)
        if not self.bad_bytes and not text.isascii():
            self.bad_bytes = _has_escaped_byte(text)
        self._drop_consumed()
        self.buf += text
        return True

    def _drop_consumed(self) -> None:
        last_newline = self.buf.rfind("\n", 0, self.pos)
        if last_newline == -1:
            self.column_base += self.pos
        else:
            self.lines_dropped += self.buf.count("\n", 0, self.pos)
            self.column_base = self.pos - last_newline - 1
        self.buf = self.buf[self.pos :]
        self.pos = 0

    def next_char(self) -> str:
        """Skip whitespace; the character at pos, "" at the end of the file."""
        if self.pos < len(self.buf) and self.buf[self.pos] not in " \t\n\r":
            return self.buf[self.pos]
        while True:
            self.pos = _SPACE.match(self.buf, self.pos).end()
            if self.pos < len(self.buf):
                return self.buf[self.pos]
            if not self.more():
                return ""

    def element(self, number: int) -> Item | Problem:
        """Decode the element at pos and move past it, reading more text as needed."""
        while True:
            start = self.pos
            try:
                value, end = _SCAN(self.buf, start)
            except (StopIteration, ValueError, RecursionError):
                end = element_end(self.buf, start)
                if end is None and self._grow(start):
                    continue
                return self._bad_element(number, start, end, _decode_error(self.buf, start))
            if end == len(self.buf) and self._grow(start):
                continue  # a number or literal could go on in the next chunk
            self.pos = end
            return self._checked(number, start, end, value)

    def _grow(self, start: int) -> bool:
        """Read more for an element that starts at `start`; False if there is no more."""
        held = len(self.buf) - start
        if held > self.limit:
            return False
        # Doubling keeps decoding a huge element from being retried once per small chunk.
        return self.more(max(READ_SIZE, held))

    def _checked(self, number: int, start: int, end: int, value: Any) -> Item | Problem:
        if self.bad_bytes:
            bad = _ESCAPED_BYTE.search(self.buf, start, end)
            if bad:
                return Problem(number, "record", "", f"is not valid UTF-8 ({self.where(bad.start())})")
        return value, number, "record"

    def _bad_element(self, number: int, start: int, end: int | None, error: Exception) -> Problem:
        if end is None:
            self.broken = True
            end = len(self.buf)
        self.pos = end
        if self.bad_bytes:
            bad = _ESCAPED_BYTE.search(self.buf, start, end)
            if bad:
                return Problem(number, "record", "", f"is not valid UTF-8 ({self.where(bad.start())})")
        if self.broken and len(self.buf) - start > self.limit:
            message = f"{over_limit(self.limit)}, or it never ends; nothing after it was read"
            return Problem(number, "record", _field_at_end(self.buf, start), message)
        error_at = getattr(error, "pos", start)
        return Problem(number, "record", "", invalid_json_message(error, self.where(error_at)))

    def where(self, at: int) -> str:
        """ "line 12, column 5" of the file for a position in the buffer."""
        last_newline = self.buf.rfind("\n", 0, at)
        line = self.lines_dropped + self.buf.count("\n", 0, at) + 1
        column = at - last_newline if last_newline != -1 else self.column_base + at + 1
        return f"line {line}, column {column}"


def _has_escaped_byte(text: str) -> bool:
    try:
        text.encode()  # much faster than a regex search; only lone surrogates make it fail
    except UnicodeEncodeError:
        return bool(_ESCAPED_BYTE.search(text))
    return False


def _decode_error(text: str, start: int) -> Exception:
    """The error raw_decode gives for the element at `start` (scan_once's are less helpful)."""
    try:
        _DECODER.raw_decode(text, start)
    except (ValueError, RecursionError) as error:
        return error
    return ValueError("could not decode")


def element_end(text: str, start: int) -> int | None:
    """Where the array element at `start` ends: the index of the "," or "]" after it.

    Counts brackets outside strings and nothing else, so it finds the end of elements that are
    not valid JSON. None when the text ends first.
    """
    depth = 0
    for match in _TOKEN.finditer(text, start):
        mark = match.group()
        if mark[0] == '"':
            if len(mark) == 1:
                return None
        elif mark in "[{":
            depth += 1
        elif depth:
            if mark != ",":
                depth -= 1
        elif mark != "}":  # "," or "]" at the element's own level
            return match.start()
    return None


def top_level_keys(text: str, start: int) -> list[str]:
    """The keys of the object that opens at text[start], as far as the text goes."""
    depth = 0
    keys = []
    for match in _KEY_TOKEN.finditer(text, start):
        mark = match.group()
        if mark in ("{", "["):
            depth += 1
        elif mark in ("}", "]"):
            depth -= 1
            if depth <= 0:
                break
        elif depth == 1 and match.group(2):
            try:
                keys.append(json.loads(match.group(1)))
            except ValueError:
                continue
    return keys


def encode(value: Any) -> str:
    return _ENCODER.encode(value)


def jsonl_chunks(objects: Iterable[Any]) -> Iterator[bytes]:
    """One JSON value per line, in chunks."""
    return text_chunks(_ENCODER.encode(value) + "\n" for value in objects)


def array_chunks(objects: Iterable[Any]) -> Iterator[bytes]:
    """A JSON array with one element per line, in chunks."""
    return text_chunks(_array_parts(objects))


def _array_parts(objects: Iterable[Any]) -> Iterator[str]:
    separator = "[\n"
    for value in objects:
        yield separator + _ENCODER.encode(value)
        separator = ",\n"
    yield "[]\n" if separator == "[\n" else "\n]\n"


def text_chunks(parts: Iterable[str]) -> Iterator[bytes]:
    """UTF-8 chunks of about CHUNK_CHARS characters or CHUNK_RECORDS parts."""
    pending: list[str] = []
    size = 0
    for part in parts:
        pending.append(part)
        size += len(part)
        if size >= CHUNK_CHARS or len(pending) >= CHUNK_RECORDS:
            yield "".join(pending).encode()
            pending = []
            size = 0
    if pending:
        yield "".join(pending).encode()
