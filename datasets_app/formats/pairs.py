"""Pairs as JSON: JSON Lines or a JSON array of objects.

    {"prompt": str, "response": str, "system"?: str, "tags"?: [str], "history"?: [turn]}

where a turn is {"role": "system" | "user" | "assistant", "content": str, "weight"?: 0 | 1} (a weight,
OpenAI's, only on an assistant turn: 0 is context only; null is none). Writing gives JSON Lines, with
system, history and tags only when they are not empty, and each turn's weight when it has one. (CSV
pairs live in csvpairs.)
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, BinaryIO

from datasets_app.formats import checks
from datasets_app.formats.jsonstream import jsonl_chunks, read_objects
from datasets_app.formats.records import Problem, ReadLimits, Record


def read(stream: BinaryIO, limits: ReadLimits | None = None) -> Iterator[Record | Problem]:
    return read_objects(stream, from_object, limits or ReadLimits())


def from_object(value: Any, position: int, unit: str, *, text_cells: bool = False) -> Record | list[Problem]:
    """A Record from one decoded object, or the problems that stop it being one.

    With text_cells (CSV, parquet string columns) tags and history may be given as text.
    """
    if type(value) is not dict:
        return [Problem(position, unit, "", f"must be an object, got {checks.json_type(value)}")]
    issues: checks.Issues = []
    prompt = checks.text(value.get("prompt"), "prompt", issues)
    response = checks.text(value.get("response"), "response", issues)
    system = checks.text(value.get("system"), "system", issues, required=False)
    tags = value.get("tags")
    history = value.get("history")
    if text_cells:
        if type(tags) is str:
            tags = checks.tags_cell(tags, "tags", issues)
        if type(history) is str:
            history = checks.json_cell(history, "history", issues)
    tags = checks.tags(tags, "tags", issues)
    history = checks.history(history, "history", issues)
    if issues:
        return checks.problems(issues, position, unit)
    return Record(prompt, response, system, history, tags, position, unit)


def write(records: Iterable[Record]) -> Iterator[bytes]:
    return jsonl_chunks(to_object(record) for record in records)


def to_object(record: Record) -> dict[str, Any]:
    value: dict[str, Any] = {"prompt": record.prompt, "response": record.response}
    if record.system:
        value["system"] = record.system
    if record.history:
        value["history"] = record.history
    if record.tags:
        value["tags"] = record.tags
    return value
