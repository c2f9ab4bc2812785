"""OpenAI's preference fine-tuning format (DPO): JSON Lines (a JSON array is also read) of

    {"input": {"messages": [{"role": "system" | "user" | "assistant", "content": str}, ...]},
     "preferred_output": [{"role": "assistant", "content": str}],
     "non_preferred_output": [{"role": "assistant", "content": str}], "tags"?: [str]}

The input's messages are the prompt (see preference: a leading system message, earlier turns, the user's prompt
last); the preferred output is the chosen answer, the non-preferred one the rejected answer. Other keys (OpenAI's
"tools", a message's "weight") are ignored. The /v1/files check (openai_app.finetune_format) reads preference
examples with this reader.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, BinaryIO

from datasets_app.formats import checks, preference
from datasets_app.formats.jsonstream import jsonl_chunks, read_objects
from datasets_app.formats.records import Problem, ReadLimits, Record

OUTPUTS = ("preferred_output", "non_preferred_output")


def read(stream: BinaryIO, limits: ReadLimits | None = None) -> Iterator[Record | Problem]:
    return read_objects(stream, from_object, limits or ReadLimits())


def from_object(value: Any, position: int, unit: str) -> Record | list[Problem]:
    if type(value) is not dict:
        return [Problem(position, unit, "", f"must be an object, got {checks.json_type(value)}")]
    issues: checks.Issues = []
    given = value.get("input")
    turns: preference.Turns = []
    if type(given) is not dict:
        issues.append(("input", "is missing" if given is None else f"must be an object, got {checks.json_type(given)}"))
    else:
        turns = preference.prompt_turns(given.get("messages"), "input.messages", issues)
    chosen, rejected = (preference.answer(value.get(name), name, issues) for name in OUTPUTS)
    tags = checks.tags(value.get("tags"), "tags", issues)
    if issues:
        return checks.problems(issues, position, unit)
    system, history, prompt = preference.split_prompt(turns, "input.messages", issues)
    if issues:
        return checks.problems(issues, position, unit)
    return Record(prompt, chosen, system, history, tags, position, unit, rejected=rejected)


def write(records: Iterable[Record]) -> Iterator[bytes]:
    return jsonl_chunks(to_object(record) for record in records)


def to_object(record: Record) -> dict[str, Any]:
    value: dict[str, Any] = {
        "input": {"messages": preference.to_prompt_messages(record)},
        "preferred_output": preference.to_answer(record.response),
        "non_preferred_output": preference.to_answer(record.rejected),
    }
    if record.tags:
        value["tags"] = record.tags
    return value
