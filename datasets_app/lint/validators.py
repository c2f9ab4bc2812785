"""Checking a response against the format its template asks for: MCQ layout, guardrail refusals.

Pure Python: the lint, the approval check and the training evaluation all use these.
"""

import json
import re
from dataclasses import dataclass
from functools import lru_cache

from datasets_app.blueprints.specs import LABEL_STYLES, GuardrailSpec, MCQSpec
from datasets_app.curation.content import normalize
from project.refusals import is_refusal

DEMO_MCQ = MCQSpec()  # today's demo format, used when a dataset has no MCQ template
# Anything that looks like an option line in any label style: "A) x", "b. x", "(c) x", "4: x".
OPTION_LIKE = re.compile(r"^(?:\([A-Za-z0-9]{1,2}\)|(?:[A-Za-z]|[0-9]{1,2})[).:])(?:\s|$)")
QUOTE_CHARS = 60


@dataclass(frozen=True)
class FormatProblem:
    line: int | None  # 1-based line of the response, when one line is at fault
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}" if self.line else self.message


Lines = list[tuple[int, str]]


def validate_mcq(text: str, spec: MCQSpec | None = None) -> list[FormatProblem]:
    """Problems of one multiple-choice question in the spec's format (the demo format without one)."""
    spec = spec or DEMO_MCQ
    if not text.strip():
        return [FormatProblem(None, "the response is empty")]
    return _mcq_json(text, spec) if spec.output == "json" else _mcq_text(text, spec)


def _quote(text: str) -> str:
    return repr(text if len(text) <= QUOTE_CHARS else text[: QUOTE_CHARS - 1] + "…")


def _range(labels: list[str]) -> str:
    return f"{labels[0]}–{labels[-1]}"


@lru_cache(maxsize=32)
def _option_regex(style: str) -> re.Pattern[str]:
    labels, line = LABEL_STYLES[style]
    before, after = line.split("{label}")
    return re.compile(rf"^{re.escape(before)}([{labels}]){re.escape(after.split('{text}')[0].rstrip())}(?:\s+|$)(.*)$")


@lru_cache(maxsize=32)
def _answer_regex(answer_line: str) -> re.Pattern[str]:
    before, after = answer_line.split("{label}")
    return re.compile(rf"^{re.escape(before.strip())}\s*(.+?)\s*{re.escape(after.strip())}$")


# --- text output


def _mcq_text(text: str, spec: MCQSpec) -> list[FormatProblem]:
    lines = [(number, line.strip()) for number, line in enumerate(text.splitlines(), 1) if line.strip()]
    answer = _answer_regex(spec.answer_line)
    explanation_head = spec.explanation_prefix.strip() if spec.explanation else None
    end = next(
        (
            index
            for index, (_, line) in enumerate(lines[1:], 1)
            if answer.match(line) or (explanation_head and line.startswith(explanation_head))
        ),
        len(lines),
    )
    body, tail = lines[1:end], lines[end:]
    problems = _question(*lines[0], spec)
    problems += [FormatProblem(n, f"extra text before the answer: {_quote(line)}") for n, line in body
                 if not OPTION_LIKE.match(line)]  # fmt: skip
    found, option_problems = _options([(n, line) for n, line in body if OPTION_LIKE.match(line)], spec)
    problems += option_problems
    matched = answer.match(tail[0][1]) if tail else None
    if matched:
        problems += _answer(tail.pop(0)[0], matched.group(1), spec=spec, found=found)
    else:
        problems.append(FormatProblem(None, f"missing the answer line {_quote(spec.answer_text('<label>'))}"))
    return problems + _explanation(tail, spec)


def _question(number: int, line: str, spec: MCQSpec) -> list[FormatProblem]:
    head = spec.question_prefix.strip()
    if not line.startswith(head):
        return [FormatProblem(number, f"expected the question to start with {head!r}, got {_quote(line)}")]
    if not line[len(head) :].strip():
        return [FormatProblem(number, "the question has no text")]
    return []


def _options(lines: Lines, spec: MCQSpec) -> tuple[dict[str, int], list[FormatProblem]]:
    """The option labels found ({label: line}) and the problems of the option lines.

    Each option-like line takes the next slot, so one wrong label does not shift the ones after it.
    """
    expected, pattern = spec.labels(), _option_regex(spec.label_style)
    found: dict[str, int] = {}
    texts: dict[str, str] = {}  # normalized option text -> its label
    wrong: set[str] = set()  # slots already reported as holding the wrong line
    problems, slot = [], 0
    for number, line in lines:
        match = pattern.match(line)
        label = match.group(1) if match else None
        if label in found:
            problems.append(FormatProblem(number, f"the label {label} is used twice"))
            continue
        if slot == len(expected):
            problems.append(FormatProblem(number, f"more than {len(expected)} options: {_quote(line)}"))
            continue
        wanted, slot = expected[slot], slot + 1
        if label != wanted:
            problems.append(
                FormatProblem(number, f"expected option {spec.option_line(wanted, '...')}, got {_quote(line)}")
            )
            wrong.add(wanted)
        if match is None or label is None:
            continue
        found[label] = number
        problems += _option_text(number, label, match.group(2).strip(), texts)
    return found, problems + _missing_options(expected, found, wrong, filled=slot)


def _option_text(number: int, label: str, text: str, texts: dict[str, str]) -> list[FormatProblem]:
    if not text:
        return [FormatProblem(number, f"option {label} has no text")]
    if normalize(text) in texts:
        return [FormatProblem(number, f"two options are the same: {texts[normalize(text)]} and {label}")]
    texts[normalize(text)] = label
    return []


def _missing_options(
    expected: list[str], found: dict[str, int], wrong: set[str], *, filled: int
) -> list[FormatProblem]:
    if filled == len(expected):
        return []
    missing = [label for label in expected if label not in found and label not in wrong]
    if missing:
        return [FormatProblem(None, f"missing option {label}") for label in missing]
    return [FormatProblem(None, f"only {filled} options; expected {len(expected)}")]


def _answer(number: int, label: str, *, spec: MCQSpec, found: dict[str, int]) -> list[FormatProblem]:
    expected = spec.labels()
    if label not in expected:
        return [FormatProblem(number, f"the answer {label} is not among the options {_range(expected)}")]
    if label not in found:
        return [FormatProblem(number, f"the answer {label} names a missing option")]
    return []


def _explanation(tail: Lines, spec: MCQSpec) -> list[FormatProblem]:
    """The explanation line when the spec wants one, and nothing after it."""
    problems = []
    if spec.explanation:
        head = spec.explanation_prefix.strip()
        wanted = _quote(f"{spec.explanation_prefix}...")
        if not tail:
            return [FormatProblem(None, f"missing the explanation line {wanted}")]
        number, line = tail.pop(0)
        if not line.startswith(head):
            problems.append(FormatProblem(number, f"expected the explanation line {wanted}, got {_quote(line)}"))
        elif not line[len(head) :].strip():
            problems.append(FormatProblem(number, "the explanation has no text"))
    where = "the explanation" if spec.explanation else "the answer"
    return problems + [FormatProblem(number, f"extra text after {where}: {_quote(line)}") for number, line in tail]


# --- JSON output


def _mcq_json(text: str, spec: MCQSpec) -> list[FormatProblem]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        return [FormatProblem(error.lineno, f"column {error.colno}: not valid JSON: {error.msg}")]
    if not isinstance(data, dict):
        return [FormatProblem(None, f"expected a JSON object, got {type(data).__name__}")]
    keys = spec.json_keys
    wanted = [keys.question, keys.options, keys.answer, *([keys.explanation] if spec.explanation else [])]
    problems = [FormatProblem(None, f"missing key {json.dumps(key)}") for key in wanted if key not in data]
    problems += [FormatProblem(None, f"unexpected key {json.dumps(key)}") for key in data if key not in wanted]
    for key in (keys.question, *([keys.explanation] if spec.explanation else [])):
        if key in data and (not isinstance(data[key], str) or not data[key].strip()):
            problems.append(FormatProblem(None, f"{json.dumps(key)} must be non-empty text"))
    if keys.options in data:
        problems += _json_options(data[keys.options], spec)
    if keys.answer in data and data[keys.answer] not in spec.labels():
        shown = data[keys.answer] if isinstance(data[keys.answer], str) else json.dumps(data[keys.answer])
        problems.append(FormatProblem(None, f"the answer {shown} is not among the options {_range(spec.labels())}"))
    return problems


def _json_options(options: object, spec: MCQSpec) -> list[FormatProblem]:
    name = json.dumps(spec.json_keys.options)
    if not isinstance(options, list):
        return [FormatProblem(None, f"{name} must be a list of {spec.options} texts")]
    problems = []
    if len(options) != spec.options:
        problems.append(FormatProblem(None, f"{name} has {len(options)} items; expected {spec.options}"))
    texts: dict[str, str] = {}
    for label, option in zip(spec.labels(), options, strict=False):
        if not isinstance(option, str) or not option.strip():
            problems.append(FormatProblem(None, f"option {label} must be non-empty text"))
        elif normalize(option) in texts:
            problems.append(FormatProblem(None, f"two options are the same: {texts[normalize(option)]} and {label}"))
        else:
            texts[normalize(option)] = label
    return problems


# --- guardrails


def validate_guardrail(*, response: str, tags: list[str], spec: GuardrailSpec | None) -> list[FormatProblem]:
    """A pair tagged blocked:<topic> must refuse (in the template's words), one tagged allowed:<topic> must answer.

    An empty response is left to the blank check.
    """
    if not response.strip():
        return []
    problems = []
    for tag in tags:
        side, _, name = tag.partition(":")
        if side in ("blocked", "allowed") and name:
            problems += _guardrail_tag(response, side=side, name=name, spec=spec)
    return problems


def _guardrail_tag(response: str, *, side: str, name: str, spec: GuardrailSpec | None) -> list[FormatProblem]:
    topic = spec.topic(name) if spec else None
    if spec and topic is None:
        return [FormatProblem(None, f"the template has no topic {name!r} (tag {side}:{name})")]
    if topic is not None and topic.blocked != (side == "blocked"):
        other = "blocked" if topic.blocked else "allowed"
        return [FormatProblem(None, f"tagged {side}:{name}, but the template lists {name!r} as {other}")]
    if side == "allowed":
        if is_refusal(response):
            return [FormatProblem(None, f"{name} is an allowed topic, but the response refuses")]
        return []
    expected = spec.refusal_for(topic) if spec and topic else None
    if expected is not None and normalize(expected) == normalize(response):
        return []
    if not is_refusal(response):
        return [FormatProblem(None, f"{name} is a blocked topic, but the response answers instead of refusing")]
    if expected is not None:
        return [FormatProblem(None, f"the refusal differs from the template's; expected {expected!r}")]
    return []
