"""Checking a fine-tuning file as OpenAI checks one, line by line, naming the line and field of each problem.

Two kinds of JSON Lines file; the first example decides which, and every line must be of that kind:

- chat: {"messages": [{"role": "system" | "user" | "assistant", "content": str, "weight"?: 0 | 1}, ...],
  "tags"?: [str]} with at least one assistant message; `weight` only on assistant messages (0: context, not
  trained on); `tags` as the openai importer reads them (`blocked:<topic>` makes a job a guardrail run).
- preference: {"input": {"messages": [...]}, "preferred_output": [{"role": "assistant", "content": str}],
  "non_preferred_output": [{"role": "assistant", "content": str}]}

Pure: bytes in, problems out; no ORM (the importers' readers and Problem are reused: a preference example is read
by datasets_app.formats.openai_preference, the reader a preference dataset imports with).
"""

from dataclasses import dataclass, field
from typing import Any, BinaryIO

from datasets_app.formats import checks, openai_preference
from datasets_app.formats.jsonstream import read_lines
from datasets_app.formats.records import Problem, ReadLimits, Record

CHAT, PREFERENCE = "chat", "preference"
MAX_PROBLEMS = 20  # a broken file reports this many problems, then says how many more there were
_ROLES = ("system", "user", "assistant")
_OK = Record(prompt="", response="")
NO_WEIGHT = "is only allowed on the assistant messages of a chat example"  # what a good line yields: its content is not kept here


@dataclass
class Checked:
    format: str = ""
    examples: int = 0
    problems: list[Problem] = field(default_factory=list)
    more_problems: int = 0

    def message(self) -> str:
        shown = "; ".join(str(problem) for problem in self.problems)
        more = f"; and {self.more_problems} more problem(s)" if self.more_problems else ""
        return f"The file is not a valid fine-tuning file: {shown}{more}."


def check_file(stream: BinaryIO, limits: ReadLimits | None = None) -> Checked:
    """Every line of the file checked; `problems` empty means the file is good."""
    checked = Checked()

    def build(value: Any, position: int, unit: str) -> Record | list[Problem]:
        if not checked.format and type(value) is dict:
            checked.format = PREFERENCE if "input" in value or "preferred_output" in value else CHAT
        issues: checks.Issues = []
        if type(value) is not dict:
            issues.append(("", f"must be a JSON object, got {checks.json_type(value)}"))
        elif checked.format == PREFERENCE:
            _preference(value, issues)
        else:
            _chat(value, issues)
        return checks.problems(issues, position, unit) if issues else _OK

    for item in read_lines(stream, build, limits):
        if type(item) is Record:
            checked.examples += 1
        elif len(checked.problems) < MAX_PROBLEMS:
            checked.problems.append(item)
        else:
            checked.more_problems += 1
    if not checked.examples and not checked.problems:
        checked.problems.append(Problem(None, "file", "", "holds no examples (one JSON object per line)"))
    return checked


def _chat(value: dict, issues: checks.Issues) -> None:
    if "input" in value or "preferred_output" in value:
        issues.append(("", "is a preference example, but the file's first example is a chat example (messages)"))
        return
    roles = _messages(value.get("messages"), "messages", issues, weights=True)
    if roles and "assistant" not in roles:
        issues.append(("messages", "has no assistant message: there is nothing to train on"))
    checks.tags(value.get("tags"), "tags", issues)


def _preference(value: dict, issues: checks.Issues) -> None:
    """A preference example, read by the preference importer's own reader (one reader for the format)."""
    if "messages" in value and "input" not in value:
        issues.append(("", "is a chat example, but the file's first example is a preference example (input)"))
        return
    found = openai_preference.from_object(value, 0, "line")
    if type(found) is list:
        issues.extend((problem.field, problem.message) for problem in found)
    given = value.get("input")
    lists = {"input.messages": given.get("messages") if type(given) is dict else None}
    lists.update((name, value.get(name)) for name in openai_preference.OUTPUTS)
    for name, listed in lists.items():
        for index, message in enumerate(listed if type(listed) is list else []):
            if type(message) is dict and "weight" in message:
                issues.append((f"{name}[{index}].weight", NO_WEIGHT))


def _messages(value: Any, name: str, issues: checks.Issues, *, weights: bool) -> list[str]:
    """The roles of a list of messages, each checked; [] when the list itself is unusable."""
    if type(value) is not list:
        issues.append((name, "is missing" if value is None else f"must be a list, got {checks.json_type(value)}"))
        return []
    if not value:
        issues.append((name, "is empty"))
        return []
    roles = []
    for index, message in enumerate(value):
        where = f"{name}[{index}]"
        if type(message) is not dict:
            issues.append((where, f"must be an object with role and content, got {checks.json_type(message)}"))
            continue
        role = message.get("role")
        if role not in _ROLES:
            shown = role if type(role) is str else checks.json_type(role)
            issues.append((f"{where}.role", f"must be one of {', '.join(_ROLES)} (got {shown[:40]})"))
        else:
            roles.append(role)
        checks.text(message.get("content"), f"{where}.content", issues, required=role != "system")
        if "weight" in message:
            _weight(message["weight"], role, f"{where}.weight", issues, allowed=weights)
    return roles


def _weight(value: Any, role: Any, where: str, issues: checks.Issues, *, allowed: bool) -> None:
    if not allowed:
        issues.append((where, NO_WEIGHT))
    elif role != "assistant":
        issues.append((where, "is only allowed on assistant messages"))
    elif type(value) is not int or value not in (0, 1):
        issues.append((where, "must be 0 or 1"))
