"""TRL's preference format (DPOTrainer, ORPO...): JSON Lines (a JSON array is also read), in either of TRL's forms.

Standard (write as "trl"): the texts as strings; a pair's system prompt, earlier turns and tags, which TRL's string
form has no place for, go in optional keys (written only when set; TRL ignores them: export "trl_chat" to train on
them):

    {"prompt": str, "chosen": str, "rejected": str, "system"?: str, "history"?: [turn], "tags"?: [str]}

Conversational (write as "trl_chat"): the prompt as messages (system, earlier turns, then the user's prompt; see
preference), each answer as a list of one assistant message:

    {"prompt": [{"role", "content"}, ...], "chosen": [{"role": "assistant", "content": str}],
     "rejected": [{"role": "assistant", "content": str}], "tags"?: [str]}

Reading takes either form on each line, and TRL's implicit prompt too: no "prompt", and chosen and rejected as
whole conversations that differ only in their last (assistant) turn.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, BinaryIO

from datasets_app.formats import checks, preference
from datasets_app.formats.jsonstream import jsonl_chunks, read_objects
from datasets_app.formats.records import Problem, ReadLimits, Record

SIDES = ("chosen", "rejected")


def read(stream: BinaryIO, limits: ReadLimits | None = None) -> Iterator[Record | Problem]:
    return read_objects(stream, from_object, limits or ReadLimits())


def from_object(value: Any, position: int, unit: str, *, text_cells: bool = False) -> Record | list[Problem]:
    """A preference Record from one decoded object, or the problems that stop it being one.

    With text_cells (parquet string columns) tags and history may be given as text, as in pairs.
    """
    if type(value) is not dict:
        return [Problem(position, unit, "", f"must be an object, got {checks.json_type(value)}")]
    issues: checks.Issues = []
    prompt = value.get("prompt")
    if type(prompt) is list:
        fields = _conversational(value, issues)
    elif prompt is None and type(value.get("chosen")) is list:
        fields = _implicit(value, issues)
    else:
        fields = _standard(value, issues, text_cells=text_cells)
    tags = value.get("tags")
    if text_cells and type(tags) is str:
        tags = checks.tags_cell(tags, "tags", issues)
    tags = checks.tags(tags, "tags", issues)
    if issues:
        return checks.problems(issues, position, unit)
    system, history, text, chosen, rejected = fields
    return Record(text, chosen, system, history, tags, position, unit, rejected=rejected)


Fields = tuple[str, list[dict[str, str]], str, str, str]  # system, history, prompt, chosen, rejected


def _standard(value: dict, issues: checks.Issues, *, text_cells: bool) -> Fields:
    prompt = checks.text(value.get("prompt"), "prompt", issues)
    chosen, rejected = (_string_side(value.get(side), side, issues) for side in SIDES)
    system = checks.text(value.get("system"), "system", issues, required=False)
    history = value.get("history")
    if text_cells and type(history) is str:
        history = checks.json_cell(history, "history", issues)
    return system, checks.history(history, "history", issues), prompt, chosen, rejected


def _string_side(value: Any, name: str, issues: checks.Issues) -> str:
    if type(value) is list:
        issues.append(
            (name, "is a list of messages, but the prompt is a string: give both as strings or both as messages")
        )
        return ""
    return checks.text(value, name, issues)


def _conversational(value: dict, issues: checks.Issues) -> Fields:
    for name in ("system", "history"):
        if value.get(name) not in (None, "", []):
            issues.append((name, "is for the string form; with the prompt given as messages, put it in the prompt"))
    turns = preference.prompt_turns(value["prompt"], "prompt", issues)
    chosen, rejected = (preference.answer(value.get(side), side, issues) for side in SIDES)
    if issues:
        return "", [], "", "", ""
    system, history, prompt = preference.split_prompt(turns, "prompt", issues)
    return system, history, prompt, chosen, rejected


def _implicit(value: dict, issues: checks.Issues) -> Fields:
    """TRL's implicit prompt: chosen and rejected are whole conversations that share every turn but the last."""
    sides = [preference.prompt_turns(value.get(side), side, issues) for side in SIDES]
    if issues:
        return "", [], "", "", ""
    for side, turns in zip(SIDES, sides, strict=True):
        if turns[-1][0] != "assistant":
            issues.append((side, f"must end with the assistant's answer, but the last turn is the {turns[-1][0]}'s"))
    if not issues and sides[0][:-1] != sides[1][:-1]:
        issues.append(("rejected", "must have the same turns as chosen before its last one (TRL's implicit prompt)"))
    if issues:
        return "", [], "", "", ""
    if len(sides[0]) < 2:
        issues.append(("prompt", "is missing (chosen and rejected hold no turns before their answers)"))
        return "", [], "", "", ""
    system, history, prompt = preference.split_prompt(sides[0][:-1], "chosen", issues)
    return system, history, prompt, sides[0][-1][1], sides[1][-1][1]


def write(records: Iterable[Record]) -> Iterator[bytes]:
    """The standard (string) form."""
    return jsonl_chunks(to_object(record) for record in records)


def write_chat(records: Iterable[Record]) -> Iterator[bytes]:
    """The conversational form."""
    return jsonl_chunks(to_chat_object(record) for record in records)


def to_object(record: Record) -> dict[str, Any]:
    value: dict[str, Any] = {"prompt": record.prompt, "chosen": record.response, "rejected": record.rejected}
    if record.system:
        value["system"] = record.system
    if record.history:
        value["history"] = record.history
    if record.tags:
        value["tags"] = record.tags
    return value


def to_chat_object(record: Record) -> dict[str, Any]:
    value: dict[str, Any] = {
        "prompt": preference.to_prompt_messages(record),
        "chosen": preference.to_answer(record.response),
        "rejected": preference.to_answer(record.rejected),
    }
    if record.tags:
        value["tags"] = record.tags
    return value
