"""Telling the import format from the first bytes of a file."""

from __future__ import annotations

import json
from typing import Any

from datasets_app.formats import csvpairs
from datasets_app.formats.checks import json_type
from datasets_app.formats.jsonstream import BOM, first_char, top_level_keys
from datasets_app.formats.records import UnknownFormat

PARQUET_MAGIC = b"PAR1"
_DECODER = json.JSONDecoder()

# The key that identifies each format, in the order they are tried ("chosen" before "prompt": TRL's files have both).
_KEYS = (
    ("messages", "openai"),
    ("conversations", "sharegpt"),
    ("instruction", "alpaca"),
    ("preferred_output", "openai_preference"),  # not "input": a pairs file may have a column of that name
    ("chosen", "trl"),
    ("prompt", "pairs"),
)
_EXPECTED = (
    "expected prompt/response, instruction/output, conversations or messages; or for preference pairs "
    "prompt/chosen/rejected or input/preferred_output/non_preferred_output"
)
_FOREIGN = (
    (b"\x1f\x8b", "it is gzip-compressed; decompress it first"),
    (b"PK\x03\x04", "it is a zip archive; extract the file first"),
    (b"\xff\xfe", "it is UTF-16 encoded; save it as UTF-8"),
    (b"\xfe\xff", "it is UTF-16 encoded; save it as UTF-8"),
)


def detect_format(head: bytes, filename: str = "") -> str:
    """One of IMPORT_FORMATS or PREFERENCE_FORMATS for a file that starts with `head` (up to 64 KiB).

    Parquet by its magic bytes (plain or preference pairs: its columns say, read by the kind asked for);
    JSON Lines or a JSON array by the keys of the first object (trl_chat when its chosen answer is a list of
    messages); otherwise CSV when the first line is a header with prompt and response columns.
    """
    if head.startswith(PARQUET_MAGIC):
        return "parquet"
    for magic, reason in _FOREIGN:
        if head.startswith(magic):
            raise _failure(filename, reason)
    text = head.removeprefix(BOM).decode("utf-8", errors="replace")
    start = first_char(head)
    if not start:
        raise _failure(filename, "the file is empty")
    if start not in "[{":
        return _detect_csv(text, filename)
    first = _first_object(text.lstrip())
    if isinstance(first, str):
        raise _failure(filename, f"{first}; {_EXPECTED}")
    for key, fmt in _KEYS:
        if key in first:
            return "trl_chat" if fmt == "trl" and type(first[key]) is list else fmt
    shown = ", ".join(map(str, list(first)[:12])) or "none"
    raise _failure(filename, f"first record has keys {shown}; {_EXPECTED}")


def _first_object(text: str) -> dict[str, Any] | str:
    """The first object of a JSON array or of JSON Lines, or what is wrong with it.

    When the object cannot be decoded, only its keys are known (the values are then None).
    """
    if text.startswith("["):
        element = text[1:].lstrip()
        if not element or element.startswith("]"):
            return "the JSON array is empty"
        return _object(element, "first record", complete=False)
    line, newline, _ = text.partition("\n")
    return _object(line, "first line", complete=bool(newline))


def _object(text: str, label: str, *, complete: bool) -> dict[str, Any] | str:
    try:
        value, _ = _DECODER.raw_decode(text)
    except (ValueError, RecursionError):
        # Cut off by the head, or broken further on: its keys still tell the format.
        keys = top_level_keys(text, 0) if text.startswith("{") else []
        if keys:
            return dict.fromkeys(keys)
        if complete:
            return f"the {label} is not a whole JSON object (JSON Lines needs one object per line)"
        return f"the {label} is not valid JSON"
    if type(value) is not dict:
        return f"the {label} is not an object (got {json_type(value)})"
    return value


def _detect_csv(text: str, filename: str) -> str:
    header = text.lstrip().split("\n", 1)[0]
    if csvpairs.header_delimiter(header):
        return "pairs"
    found = ", ".join(csvpairs.header_names(header)[:12]) or "none"
    reason = (
        f"the first line is not JSON, and not a CSV header with prompt and response columns (found columns: {found})"
    )
    raise _failure(filename, reason)


def _failure(filename: str, reason: str) -> UnknownFormat:
    subject = f"the format of {filename}" if filename else "the format"
    return UnknownFormat(f"could not detect {subject}: {reason}")
