"""Conversations (a list of turns) to and from Records; shared by openai and sharegpt.

The last turn must be the assistant's: it is the response. The turn right before it must be the
user's: it is the prompt. A system turn at the start is the system prompt; everything else is the
history, oldest first. Writing reverses this, so a Record whose history starts with a system turn
and whose own system is empty comes back with that turn as its system prompt.

An assistant turn may carry OpenAI's "weight": 0 (context only) or 1 (trained on, as without one).
The history keeps it and writing puts it back. The response is always trained on: weight 1 on the
final turn is accepted (and not kept), weight 0 there is a problem.
"""

from __future__ import annotations

from typing import Any

from datasets_app.formats import checks
from datasets_app.formats.records import Record

Turns = list[tuple[str, str, int | None]]  # (role, content, weight or None)


def read_turns(
    value: Any, name: str, issues: checks.Issues, *, keys: tuple[str, str], roles: dict[str, str], weights: bool = True
) -> Turns:
    """(role, content, weight) for each turn of `value`; keys are the role and content keys of a turn. Without
    `weights` a turn's weight is not read (None), as the preference formats, which train on no earlier turn, do."""
    if value is None:
        issues.append((name, "is missing"))
        return []
    if type(value) is not list:
        issues.append((name, f"must be a list of turns, got {checks.json_type(value)}"))
        return []
    if not value:
        issues.append((name, "is empty"))
        return []
    role_key, content_key = keys
    turns = []
    for index, turn in enumerate(value):
        if type(turn) is dict:
            spelled = turn.get(role_key)
            role = roles.get(spelled) if type(spelled) is str else None
            content = turn.get(content_key)
            weight = turn.get("weight") if weights else None
            plain = (
                "weight" not in turn
                or not weights
                or (role == "assistant" and type(weight) is int and weight in (0, 1))
            )
            if role and plain and type(content) is str and checks.clean(content, blank_ok=role == "system"):
                turns.append((role, content, weight))
                continue
        turns.append(_checked_turn(turn, f"{name}[{index}]", issues, keys, roles, weights))
    return turns


def _checked_turn(
    turn: Any, where: str, issues: checks.Issues, keys: tuple[str, str], roles: dict[str, str], weights: bool
) -> tuple[str, str, int | None]:
    """A turn that failed the fast check: the same result, with its issues told."""
    role_key, content_key = keys
    if type(turn) is not dict:
        got = checks.json_type(turn)
        issues.append((where, f"must be an object with {role_key} and {content_key}, got {got}"))
        return "", "", None
    role = checks.role(turn.get(role_key), f"{where}.{role_key}", issues, roles)
    required = role != "system"
    content = checks.text(turn.get(content_key), f"{where}.{content_key}", issues, required=required)
    if not weights or "weight" not in turn:
        return role, content, None
    assistant = next(spelling for spelling, canon in roles.items() if canon == "assistant")
    return role, content, checks.weight(turn["weight"], role, f"{where}.weight", issues, assistant=assistant)


def split(turns: Turns, name: str, issues: checks.Issues) -> tuple[str, list[dict[str, Any]], str, str]:
    """(system, history, prompt, response) of a conversation whose turns are each valid."""
    roles = [role for role, _, _ in turns]
    if "assistant" not in roles:
        issues.append((name, "has no assistant turn"))
    elif roles[-1] != "assistant":
        issues.append((name, f"must end with the assistant's turn, but the last turn is the {roles[-1]}'s"))
    elif len(roles) < 2 or roles[-2] != "user":
        issues.append((name, "needs a user turn right before the final assistant turn"))
    elif turns[-1][2] == 0:
        issues.append((f"{name}[{len(turns) - 1}].weight", FINAL_WEIGHT))
    if issues:
        return "", [], "", ""
    start = 1 if roles[0] == "system" else 0
    system = turns[0][1] if start else ""
    history = [_turn(role, content, weight) for role, content, weight in turns[start:-2]]
    return system, history, turns[-2][1], turns[-1][1]


FINAL_WEIGHT = "is 0, but the final assistant turn is the pair's response, which is always trained on"


def _turn(role: str, content: str, weight: int | None) -> dict[str, Any]:
    return (
        {"role": role, "content": content} if weight is None else {"role": role, "content": content, "weight": weight}
    )


def to_turns(record: Record) -> Turns:
    """The conversation of a Record: system (when set), history, prompt, response."""
    turns: Turns = [("system", record.system, None)] if record.system else []
    turns.extend((turn["role"], turn["content"], turn.get("weight")) for turn in record.history)
    turns.append(("user", record.prompt, None))
    turns.append(("assistant", record.response, None))
    return turns


def with_weight(value: dict[str, Any], weight: int | None) -> dict[str, Any]:
    """A written turn, with its weight when it has one."""
    if weight is not None:
        value["weight"] = weight
    return value
