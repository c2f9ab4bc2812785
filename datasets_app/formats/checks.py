"""Checks on decoded values, shared by every format.

Each check appends (field, message) pairs to an `issues` list and returns a usable value, so a
record reports all of its problems at once instead of only the first.
"""

from __future__ import annotations

import json
import re
from typing import Any

from datasets_app.formats.records import ROLES, Problem

Issues = list[tuple[str, str]]

# The accepted spellings of each role, as the file spells it -> one of ROLES. The first spelling
# of each role is the one named in messages.
ROLE_NAMES = {"system": "system", "user": "user", "assistant": "assistant"}

# Lone surrogates come from a "\udXXX" escape without its partner, or from undecodable bytes. The
# database cannot store them (nor NUL), so they are refused here rather than failing mid-import.
_SURROGATE = re.compile("[\ud800-\udfff]")


def json_type(value: Any) -> str:
    """The JSON name of a decoded value's type, for messages like "got number"."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list | tuple):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def clean(value: str, *, blank_ok: bool = False) -> bool:
    """Whether a string passes text() without an issue; the fast path for valid records."""
    return (
        (blank_ok or (value != "" and not value.isspace()))
        and "\x00" not in value
        and (value.isascii() or not _SURROGATE.search(value))
    )


def text(value: Any, name: str, issues: Issues, *, required: bool = True) -> str:
    """A string; a required one must be present and not blank. Returns "" when unusable."""
    if type(value) is not str:
        if value is None:
            if required:
                issues.append((name, "is missing"))
            return ""
        issues.append((name, f"must be a string, got {json_type(value)}"))
        return ""
    if required and (not value or value.isspace()):
        issues.append((name, "is blank"))
    elif "\x00" in value:
        issues.append((name, "contains a NUL character"))
    elif not value.isascii() and _SURROGATE.search(value):
        issues.append((name, "contains invalid Unicode (an unpaired surrogate)"))
    return value


def tags(value: Any, name: str, issues: Issues) -> list[str]:
    """An optional list of non-blank strings."""
    if value is None:
        return []
    if type(value) is not list:
        issues.append((name, f"must be a list of strings, got {json_type(value)}"))
        return []
    for index, tag in enumerate(value):
        text(tag, f"{name}[{index}]", issues)
    return value


def history(value: Any, name: str, issues: Issues) -> list[dict[str, Any]]:
    """An optional list of {"role", "content", "weight"?} turns; only a system turn may be blank, and only an
    assistant turn may have a weight (0 or 1; null is no weight, as a parquet struct without one reads)."""
    if value is None:
        return []
    if type(value) is not list:
        issues.append((name, f"must be a list of turns, got {json_type(value)}"))
        return []
    turns = []
    for index, turn in enumerate(value):
        where = f"{name}[{index}]"
        if type(turn) is not dict:
            issues.append((where, f"must be an object with role and content, got {json_type(turn)}"))
            continue
        turn_role = role(turn.get("role"), f"{where}.role", issues, ROLE_NAMES)
        required = turn_role != "system"
        content = text(turn.get("content"), f"{where}.content", issues, required=required)
        turns.append({"role": turn_role, "content": content})
        if turn.get("weight") is not None:
            turns[-1]["weight"] = weight(turn["weight"], turn_role, f"{where}.weight", issues)
    return turns


def weight(value: Any, role: str, name: str, issues: Issues, *, assistant: str = "assistant") -> Any:
    """A turn's weight (OpenAI's): 0 (context only) or 1 (trained on), on an assistant turn only (its role as
    the file spells it: `assistant`)."""
    if role and role != "assistant":
        issues.append((name, f"is only allowed on {assistant} turns"))
    elif type(value) is not int or value not in (0, 1):
        shown = json.dumps(value)[:40] if isinstance(value, int | float | str) else json_type(value)
        issues.append((name, f"must be 0 or 1 (0: context only, 1: trained on), got {shown}"))
    return value


def role(value: Any, name: str, issues: Issues, names: dict[str, str]) -> str:
    """Map a role as the file spells it to one of ROLES; "" when it is not known."""
    mapped = names.get(value) if type(value) is str else None
    if mapped is not None:
        return mapped
    if value is None:
        issues.append((name, "is missing"))
    else:
        shown = repr(value) if isinstance(value, str) else json_type(value)
        issues.append((name, f"unknown role {shown} (expected {_spellings(names)})"))
    return ""


def _spellings(names: dict[str, str]) -> str:
    """The first spelling of each role, as "system, user or assistant"."""
    first = [next(spelling for spelling, canon in names.items() if canon == r) for r in ROLES]
    return f"{', '.join(first[:-1])} or {first[-1]}"


def json_cell(cell: str, name: str, issues: Issues) -> Any:
    """Decode JSON kept in a text cell (CSV, parquet string column); a blank cell is absent."""
    if not cell or cell.isspace():
        return None
    try:
        return json.loads(cell)
    except (ValueError, RecursionError) as error:
        issues.append((name, invalid_json_message(error)))
        return None


def tags_cell(cell: str, name: str, issues: Issues) -> Any:
    """Tags kept in a text cell: a JSON list, or names separated by ";"."""
    if cell.lstrip().startswith("["):
        return json_cell(cell, name, issues)
    return [tag.strip() for tag in cell.split(";") if tag.strip()]


def invalid_json_message(error: Exception, where: str = "") -> str:
    """ "invalid JSON: Expecting ',' delimiter (column 17)" from a decoder's error."""
    if isinstance(error, json.JSONDecodeError):
        return f"invalid JSON: {error.msg} ({where or f'column {error.colno}'})"
    if isinstance(error, RecursionError):
        return "invalid JSON: nested too deeply"
    return f"invalid JSON: {error}"


def problems(issues: Issues, position: int | None, unit: str) -> list[Problem]:
    return [Problem(position, unit, name, message) for name, message in issues]
