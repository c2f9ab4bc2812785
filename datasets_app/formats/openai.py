"""OpenAI chat fine-tuning format: JSON Lines (a JSON array is also read) of

    {"messages": [{"role": "system" | "user" | "assistant", "content": str, "weight"?: 0 | 1}, ...],
     "tags"?: [str]}

"weight" (on assistant messages only) is kept: 0 makes an earlier answer context only; see conversation
for how the turns map to a Record. Other extra keys on a message are ignored.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, BinaryIO

from datasets_app.formats import checks, conversation
from datasets_app.formats.jsonstream import jsonl_chunks, read_objects
from datasets_app.formats.records import Problem, ReadLimits, Record


def read(stream: BinaryIO, limits: ReadLimits | None = None) -> Iterator[Record | Problem]:
    return read_objects(stream, from_object, limits or ReadLimits())


def from_object(value: Any, position: int, unit: str) -> Record | list[Problem]:
    if type(value) is not dict:
        return [Problem(position, unit, "", f"must be an object, got {checks.json_type(value)}")]
    issues: checks.Issues = []
    turns = conversation.read_turns(
        value.get("messages"), "messages", issues, keys=("role", "content"), roles=checks.ROLE_NAMES
    )
    tags = checks.tags(value.get("tags"), "tags", issues)
    if issues:
        return checks.problems(issues, position, unit)
    system, history, prompt, response = conversation.split(turns, "messages", issues)
    if issues:
        return checks.problems(issues, position, unit)
    return Record(prompt, response, system, history, tags, position, unit)


def write(records: Iterable[Record]) -> Iterator[bytes]:
    return jsonl_chunks(to_object(record) for record in records)


def to_object(record: Record) -> dict[str, Any]:
    messages = [
        conversation.with_weight({"role": role, "content": content}, weight)
        for role, content, weight in conversation.to_turns(record)
    ]
    value: dict[str, Any] = {"messages": messages}
    if record.tags:
        value["tags"] = record.tags
    return value
