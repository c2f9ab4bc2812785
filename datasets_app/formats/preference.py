"""What the preference formats share: a prompt given as messages, and an answer given as one assistant message.

A preference record is a Record whose `response` is the chosen answer and `rejected` the rejected one. Given as
messages (TRL's conversational form, OpenAI's input), the prompt is the conversation up to the answer: a system
turn at the start is the system prompt, the last turn must be the user's (the prompt), and the turns between are
the history. Writing reverses this, so a Record whose history starts with a system turn and whose own system is
empty comes back with that turn as its system prompt (as in conversation).
"""

from __future__ import annotations

from typing import Any

from datasets_app.formats import checks, conversation
from datasets_app.formats.records import Record

Turns = conversation.Turns


def prompt_turns(value: Any, name: str, issues: checks.Issues) -> Turns:
    """(role, content, weight) for each message of a prompt given as {role, content} messages."""
    return conversation.read_turns(
        value, name, issues, keys=("role", "content"), roles=checks.ROLE_NAMES, weights=False
    )


def split_prompt(turns: Turns, name: str, issues: checks.Issues) -> tuple[str, list[dict[str, str]], str]:
    """(system, history, prompt) of a conversation whose turns are each valid and whose last turn is the prompt."""
    if not turns:
        return "", [], ""
    last = turns[-1][0]
    if last != "user":
        issues.append((name, f"must end with the user's turn (the prompt), but the last turn is the {last}'s"))
        return "", [], ""
    start = 1 if len(turns) > 1 and turns[0][0] == "system" else 0
    system = turns[0][1] if start else ""
    history = [{"role": role, "content": content} for role, content, _ in turns[start:-1]]  # no weights: the prompt
    return system, history, turns[-1][1]


def answer(value: Any, name: str, issues: checks.Issues) -> str:
    """The content of an answer given as a list of exactly one assistant message."""
    if type(value) is not list or len(value) != 1:
        got = "missing" if value is None else checks.json_type(value) if type(value) is not list else f"{len(value)}"
        issues.append((name, f"must be a list of exactly one assistant message (got {got})"))
        return ""
    message = value[0]
    where = f"{name}[0]"
    if type(message) is not dict:
        issues.append((where, f"must be an object with role and content, got {checks.json_type(message)}"))
        return ""
    role = checks.role(message.get("role"), f"{where}.role", issues, checks.ROLE_NAMES)
    if role and role != "assistant":
        issues.append((f"{where}.role", f"must be assistant, got {role}"))
    return checks.text(message.get("content"), f"{where}.content", issues)


def to_prompt_messages(record: Record) -> list[dict[str, str]]:
    """The prompt of a Record as messages: system (when set), history, then the user's prompt."""
    messages = [{"role": "system", "content": record.system}] if record.system else []
    messages += [{"role": turn["role"], "content": turn["content"]} for turn in record.history]
    messages.append({"role": "user", "content": record.prompt})
    return messages


def to_answer(content: str) -> list[dict[str, str]]:
    return [{"role": "assistant", "content": content}]
