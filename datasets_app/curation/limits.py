"""How long user text may be: the one place that says so. Every write path checks here.

A pair's texts (prompt, response, a preference pair's rejected answer, system prompt, each earlier turn) may
each be PAIR_TEXT_MAX_CHARS long (default 100,000 characters, about 25,000 tokens: three times the default base model's 8,192-token context,
room for a long document and its answer, while a pathological megabyte of text is refused before anything
tokenizes, hashes or indexes it). All of a pair's text together may be PAIR_TOTAL_MAX_CHARS (default
400,000, about 100,000 tokens, near the longest sequence training accepts: 131,072 tokens). The other
caps below are constants: no one needs more, and a bigger value only costs memory.

`pair_text_errors` and `pair_text_require` are what a write path calls for a pair (the curation services,
the import, generation and model drafts); `texts_require` for the other fields.
"""

from collections.abc import Iterable, Mapping
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError

from datasets_app.formats import ReadLimits, too_long

HISTORY_MAX_TURNS = 200
TAGS_MAX = 50
TAG_MAX_CHARS = 200
SOURCE_MAX_CHARS = 255
# Other text fields, by the name the services and forms give them.
TEXT_MAX_CHARS = {
    "name": 200,
    "description": 5_000,
    "guidelines": 50_000,
    "comment": 5_000,
    "review_comment": 5_000,
    "username": 150,
}
# A Parquet file may decompress to at most this many times IMPORT_MAX_BYTES (text compresses 3 to 5 times).
PARQUET_EXPANSION = 8
# The fewest bytes a pair takes in a file: a JSONL line {"prompt":"a","response":"b"} is 29.
SMALLEST_RECORD_BYTES = 16

__all__ = [
    "HISTORY_MAX_TURNS",
    "TAGS_MAX",
    "TAG_MAX_CHARS",
    "TEXT_MAX_CHARS",
    "import_read_limits",
    "pair_text_errors",
    "pair_text_max",
    "pair_text_require",
    "pair_total_max",
    "texts_require",
    "too_long",
]


def pair_text_max() -> int:
    """The longest prompt, response, system prompt or earlier turn, in characters (PAIR_TEXT_MAX_CHARS)."""
    return settings.PAIR_TEXT_MAX_CHARS


def pair_total_max() -> int:
    """The longest a pair's text may be all together, in characters (PAIR_TOTAL_MAX_CHARS)."""
    return settings.PAIR_TOTAL_MAX_CHARS


def pair_text_errors(
    *,
    prompt: str = "",
    response: str = "",
    system_prompt: str = "",
    history: Iterable[Mapping[str, Any]] = (),
    tags: Iterable[str] = (),
    system_name: str = "system_prompt",
    rejected: str = "",
) -> dict[str, str]:
    """{field: message} for each part of a pair over its limit, e.g. {"response": "at most 100000 characters
    (got 250000)"}; empty when the pair fits. Turns are named history[n] (their content), tags tags[n].

    Only lengths are looked at (no copies), so it is cheap on any input; call it before anything else
    touches the text. `system_name` is what the caller calls the system prompt ("system" in files).
    `rejected` is a preference pair's rejected answer: capped like the response, and counted in the total.
    """
    cap = pair_text_max()
    errors = {}
    total = 0
    texts = ((system_name, system_prompt), ("prompt", prompt), ("response", response), ("rejected", rejected))
    for name, text in texts:
        total += len(text)
        if len(text) > cap:
            errors[name] = too_long(len(text), cap)
    turns = list(history)
    if len(turns) > HISTORY_MAX_TURNS:
        errors["history"] = f"at most {HISTORY_MAX_TURNS} earlier turns (got {len(turns)})"
    else:
        for index, turn in enumerate(turns):
            content = turn.get("content", "") if isinstance(turn, Mapping) else ""
            length = len(content) if isinstance(content, str) else 0
            total += length
            if length > cap:
                errors[f"history[{index}]"] = too_long(length, cap)
        if total > pair_total_max() and not errors:
            errors["history"] = f"the pair's text all together is {too_long(total, pair_total_max())}"
    errors.update(_tag_errors(list(tags)))
    return errors


def _tag_errors(tags: list[str]) -> dict[str, str]:
    if len(tags) > TAGS_MAX:
        return {"tags": f"at most {TAGS_MAX} tags (got {len(tags)})"}
    return {
        f"tags[{index}]": too_long(len(tag), TAG_MAX_CHARS)
        for index, tag in enumerate(tags)
        if isinstance(tag, str) and len(tag) > TAG_MAX_CHARS
    }


def pair_text_require(**fields: Any) -> None:
    """ValidationError naming each part of the pair over its limit (the arguments of pair_text_errors)."""
    errors = pair_text_errors(**fields)
    if errors:
        raise ValidationError({name: [message] for name, message in errors.items()})


def texts_require(**texts: str) -> None:
    """ValidationError naming each of these fields (names from TEXT_MAX_CHARS) that is over its limit."""
    errors = {
        name: [too_long(len(text), TEXT_MAX_CHARS[name])]
        for name, text in texts.items()
        if isinstance(text, str) and len(text) > TEXT_MAX_CHARS[name]
    }
    if errors:
        raise ValidationError(errors)


def import_read_limits() -> ReadLimits:
    """What reading one import file may hold in memory, from the caps: a record in the file at most the
    largest pair the caps allow (every character escaped as JSON \\uXXXX twice over, plus turn and tag
    overhead); a Parquet file at most PARQUET_EXPANSION times IMPORT_MAX_BYTES decoded."""
    record = 12 * pair_total_max() + HISTORY_MAX_TURNS * 64 + TAGS_MAX * 12 * TAG_MAX_CHARS + (1 << 20)
    return ReadLimits(
        record_bytes=record,
        decoded_bytes=PARQUET_EXPANSION * settings.IMPORT_MAX_BYTES,
        records=settings.IMPORT_MAX_BYTES // SMALLEST_RECORD_BYTES,
    )
