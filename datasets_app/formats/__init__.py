"""Import and export of instruction-tuning datasets: pure Python, no Django, no ORM.

    read_records(stream, fmt=None, limits=ReadLimits()) -> Iterator[Record | Problem]
    write_records(records, fmt) -> Iterator[bytes]

One module per format (pairs and csvpairs, alpaca, sharegpt, openai, parquet; for preference pairs trl,
openai_preference and parquet's preference columns); detect guesses the format, jsonstream reads and writes
JSON a record at a time, checks validates decoded values.

Round trip: for every export format, reading what was written gives back the same prompt,
response, system, history and tags, with two documented exceptions: a history that starts with a
system turn, in a record without a system prompt, comes back as that record's system prompt
(sharegpt, openai, alpaca); and alpaca keeps only the user -> assistant pairs of a history (see
alpaca). Reading refuses text the database could not store (NUL, unpaired surrogates).
Preference pairs (read_records/write_records with preference=True) round-trip the same way, their rejected
answer included; trl's string form keeps everything, its conversational form and openai_preference have the
system-turn exception above.
"""

from datasets_app.formats.detect import detect_format
from datasets_app.formats.records import Problem, ReadLimits, Record, UnknownFormat, too_long
from datasets_app.formats.registry import (
    EXPORT_CONTENT_TYPES,
    EXPORT_EXTENSIONS,
    EXPORT_FORMATS,
    IMPORT_FORMATS,
    PREFERENCE_FORMATS,
    kind_mismatch,
    read_records,
    write_records,
)

__all__ = [
    "EXPORT_CONTENT_TYPES",
    "EXPORT_EXTENSIONS",
    "EXPORT_FORMATS",
    "IMPORT_FORMATS",
    "PREFERENCE_FORMATS",
    "Problem",
    "ReadLimits",
    "Record",
    "UnknownFormat",
    "detect_format",
    "kind_mismatch",
    "read_records",
    "too_long",
    "write_records",
]
