"""ShareGPT: a JSON array (JSON Lines is also read) of

    {"conversations": [{"from": "system" | "human" | "gpt", "value": str, "weight"?: 0 | 1}, ...],
     "system"?: str, "tags"?: [str]}

"user" and "assistant" are read as "human" and "gpt". A top-level "system" (LLaMA-Factory style)
is the system prompt; a system turn at the start of the conversation is too, unless a top-level
one is given, in which case the turn stays in the history. Writing puts the system prompt in a
first system turn. "weight" on a gpt turn is kept as in openai; see conversation for how the turns map
to a Record.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, BinaryIO

from datasets_app.formats import checks, conversation
from datasets_app.formats.jsonstream import array_chunks, read_objects
from datasets_app.formats.records import Problem, ReadLimits, Record

ROLE_NAMES = {"system": "system", "human": "user", "gpt": "assistant", "user": "user", "assistant": "assistant"}
SPELLING = {"system": "system", "user": "human", "assistant": "gpt"}


def read(stream: BinaryIO, limits: ReadLimits | None = None) -> Iterator[Record | Problem]:
    return read_objects(stream, from_object, limits or ReadLimits())


def from_object(value: Any, position: int, unit: str) -> Record | list[Problem]:
    if type(value) is not dict:
        return [Problem(position, unit, "", f"must be an object, got {checks.json_type(value)}")]
    issues: checks.Issues = []
    turns = conversation.read_turns(
        value.get("conversations"), "conversations", issues, keys=("from", "value"), roles=ROLE_NAMES
    )
    top_system = checks.text(value.get("system"), "system", issues, required=False)
    tags = checks.tags(value.get("tags"), "tags", issues)
    if issues:
        return checks.problems(issues, position, unit)
    system, history, prompt, response = conversation.split(turns, "conversations", issues)
    if issues:
        return checks.problems(issues, position, unit)
    if top_system:
        if turns[0][0] == "system":
            history.insert(0, {"role": "system", "content": system})
        system = top_system
    return Record(prompt, response, system, history, tags, position, unit)


def write(records: Iterable[Record]) -> Iterator[bytes]:
    return array_chunks(to_object(record) for record in records)


def to_object(record: Record) -> dict[str, Any]:
    turns = [
        conversation.with_weight({"from": SPELLING.get(role, role), "value": content}, weight)
        for role, content, weight in conversation.to_turns(record)
    ]
    value: dict[str, Any] = {"conversations": turns}
    if record.tags:
        value["tags"] = record.tags
    return value
