"""Checking a model's answer against the format a dataset asks for."""

import re
from dataclasses import dataclass

QUESTION = re.compile(r"^Question: \S.*\?$")
OPTION = re.compile(r"^([A-Z])\) (\S.*)$")
ANSWER = re.compile(r"^Answer: ([A-Z])$")
EXPLANATION = re.compile(r"^Explanation: \S.*$")


@dataclass(frozen=True)
class FormatProblem:
    line: int | None
    message: str


def validate_mcq(text: str, *, options: int = 4, explanation: bool = True) -> list[FormatProblem]:
    """Problems of one multiple-choice question in the demo format (question, A) to D), answer, explanation)."""
    lines = text.strip().splitlines()
    expected = 1 + options + 1 + (1 if explanation else 0)
    problems = []
    if len(lines) != expected:
        problems.append(FormatProblem(None, f"expected {expected} lines, got {len(lines)}"))
    if not lines or not QUESTION.match(lines[0]):
        problems.append(FormatProblem(1, "the first line must be 'Question: ...?'"))
    labels, texts = [], []
    for number, line in enumerate(lines[1 : 1 + options], start=2):
        match = OPTION.match(line)
        if not match:
            problems.append(FormatProblem(number, f"expected an option like 'A) ...', got {line[:40]!r}"))
            continue
        labels.append(match.group(1))
        texts.append(match.group(2).strip().casefold())
    wanted = [chr(ord("A") + n) for n in range(options)]
    if labels and labels != wanted[: len(labels)]:
        problems.append(FormatProblem(None, f"option labels must run {', '.join(wanted)}"))
    if len(set(texts)) != len(texts):
        problems.append(FormatProblem(None, "two options are the same"))
    answer_line = lines[1 + options] if len(lines) > 1 + options else ""
    answer = ANSWER.match(answer_line)
    if not answer:
        problems.append(FormatProblem(2 + options, "expected 'Answer: <label>'"))
    elif answer.group(1) not in labels:
        problems.append(FormatProblem(2 + options, f"the answer {answer.group(1)} is not among the options"))
    if explanation and (len(lines) <= 2 + options or not EXPLANATION.match(lines[2 + options])):
        problems.append(FormatProblem(3 + options, "expected 'Explanation: ...'"))
    return problems
