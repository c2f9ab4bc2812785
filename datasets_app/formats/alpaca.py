"""Alpaca: a JSON array (JSON Lines is also read) of

    {"instruction": str, "input": str, "output": str,
     "system"?: str, "history"?: [["user text", "assistant text"], ...], "tags"?: [str]}

system and history are LLaMA-Factory's extensions. Reading: the prompt is the instruction, followed
by a blank line and the input when the input is not blank (or the input alone when the
instruction is blank); the output is the response.

Writing: instruction = prompt, input = "", output = response. Alpaca history holds only
(user, assistant) pairs, so a Record's history is written as follows: a leading system turn
becomes the system prompt when the record has none (and is dropped when it has one); any other
turn that breaks strict user -> assistant alternation is dropped. Histories that alternate, which
is every history read from alpaca, openai or sharegpt without mid-conversation system turns or
repeated roles, survive a round trip unchanged, but for the weights of assistant turns: alpaca has
no place for them, so they are dropped (every earlier answer is trained on again).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, BinaryIO

from datasets_app.formats import checks
from datasets_app.formats.jsonstream import array_chunks, read_objects
from datasets_app.formats.records import Problem, ReadLimits, Record


def read(stream: BinaryIO, limits: ReadLimits | None = None) -> Iterator[Record | Problem]:
    return read_objects(stream, from_object, limits or ReadLimits())


def from_object(value: Any, position: int, unit: str) -> Record | list[Problem]:
    if type(value) is not dict:
        return [Problem(position, unit, "", f"must be an object, got {checks.json_type(value)}")]
    issues: checks.Issues = []
    prompt = _prompt(value, issues)
    response = checks.text(value.get("output"), "output", issues)
    system = checks.text(value.get("system"), "system", issues, required=False)
    history = _history(value.get("history"), issues)
    tags = checks.tags(value.get("tags"), "tags", issues)
    if issues:
        return checks.problems(issues, position, unit)
    return Record(prompt, response, system, history, tags, position, unit)


def _prompt(value: dict[str, Any], issues: checks.Issues) -> str:
    """The instruction, then the input after a blank line; either alone when the other is blank."""
    given = value.get("instruction")
    extra = value.get("input")
    if (extra is None or extra == "") and type(given) is str:
        return checks.text(given, "instruction", issues)
    if given is None:
        issues.append(("instruction", "is missing"))
    instruction = checks.text(given, "instruction", issues, required=False)
    extra = checks.text(extra, "input", issues, required=False)
    parts = [part for part in (instruction, extra) if part and not part.isspace()]
    if not parts and type(given) is str:
        issues.append(("instruction", "is blank"))
    return "\n\n".join(parts)


def _history(value: Any, issues: checks.Issues) -> list[dict[str, str]]:
    if value is None:
        return []
    if type(value) is not list:
        issues.append(("history", f"must be a list of [instruction, response] pairs, got {checks.json_type(value)}"))
        return []
    turns = []
    for index, pair in enumerate(value):
        where = f"history[{index}]"
        if type(pair) is not list or len(pair) != 2:
            shown = f"{len(pair)} items" if type(pair) is list else checks.json_type(pair)
            issues.append((where, f"must be a pair [instruction, response], got {shown}"))
            continue
        turns.append({"role": "user", "content": checks.text(pair[0], f"{where}[0]", issues)})
        turns.append({"role": "assistant", "content": checks.text(pair[1], f"{where}[1]", issues)})
    return turns


def write(records: Iterable[Record]) -> Iterator[bytes]:
    return array_chunks(to_object(record) for record in records)


def to_object(record: Record) -> dict[str, Any]:
    system, history = _pairs(record)
    value: dict[str, Any] = {"instruction": record.prompt, "input": "", "output": record.response}
    if system:
        value["system"] = system
    if history:
        value["history"] = history
    if record.tags:
        value["tags"] = record.tags
    return value


def _pairs(record: Record) -> tuple[str, list[list[str]]]:
    """The system prompt and the (user, assistant) pairs of a Record's history."""
    system = record.system
    turns = record.history
    if turns and turns[0]["role"] == "system":
        system = system or turns[0]["content"]
        turns = turns[1:]
    pairs = []
    asked = None  # a user turn waiting for its answer
    for turn in turns:
        if turn["role"] == "user":
            asked = turn["content"]
        elif turn["role"] == "assistant" and asked is not None:
            pairs.append([asked, turn["content"]])
            asked = None
    return system, pairs
