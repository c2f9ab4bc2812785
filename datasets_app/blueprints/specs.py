"""What a guardrail or MCQ template decides, parsed and checked. Pure Python, no ORM.

A template's JSON `spec` becomes a frozen GuardrailSpec or MCQSpec through `parse_spec`, which raises
SpecError listing every problem with its field path, e.g. `blocked[1].seeds[0]: may not be blank`.
"""

import json
import re
from dataclasses import asdict, dataclass, field, fields
from typing import Any, ClassVar

from datasets_app.curation.content import normalize
from datasets_app.formats.records import too_long

_NAMED = re.compile(r"\{(\w*)\}")  # any {name}, to catch unknown placeholders in a pattern
SLUG = re.compile(r"[a-z0-9][a-z0-9-]*")
REFUSAL_PLACEHOLDERS = ("topic", "description", "redirect")
TOPIC_KEYS = ("name", "label", "description", "redirect", "seeds")
GUARDRAIL_KEYS = ("system_prompt", "refusal", "blocked", "allowed", "paraphrases")
MAX_PARAPHRASES = 5
# label style -> (the labels in order, how an option line is written)
LABEL_STYLES = {
    "A)": ("ABCDEF", "{label}) {text}"),
    "A.": ("ABCDEF", "{label}. {text}"),
    "(a)": ("abcdef", "({label}) {text}"),
    "1.": ("123456", "{label}. {text}"),
}
OUTPUTS = ("text", "json")
MIN_OPTIONS, MAX_OPTIONS = 2, 6
# Caps on what a spec holds: each text (a pattern, a label, a seed prompt), each list (topics, seeds,
# levels), and the pairs the whole template generates, so one spec cannot ask for millions of pairs.
SPEC_TEXT_MAX_CHARS = 10_000
SPEC_LIST_MAX = 500
SPEC_PAIRS_MAX = 10_000


class SpecError(ValueError):
    """A template spec with problems; each names its field path."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class Topic:
    name: str
    label: str
    description: str = ""
    seeds: tuple[str, ...] = ()
    redirect: str = ""
    blocked: bool = True

    @property
    def tag(self) -> str:
        """The tag of pairs generated from this topic: blocked:<name> or allowed:<name>."""
        return f"{'blocked' if self.blocked else 'allowed'}:{self.name}"

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"name": self.name, "label": self.label, "description": self.description}
        if self.blocked or self.redirect:
            data["redirect"] = self.redirect
        return {**data, "seeds": list(self.seeds)}


@dataclass(frozen=True)
class GuardrailSpec:
    """Topics to refuse (with one refusal pattern) and topics to answer, each with seed prompts."""

    kind: ClassVar[str] = "guardrail"
    refusal: str
    blocked: tuple[Topic, ...]
    allowed: tuple[Topic, ...] = ()
    system_prompt: str = ""
    paraphrases: int = 0

    @property
    def topics(self) -> tuple[Topic, ...]:
        return self.blocked + self.allowed

    def topic(self, name: str) -> Topic | None:
        return next((topic for topic in self.topics if topic.name == name), None)

    def refusal_for(self, topic: Topic | str) -> str:
        """The refusal pattern filled in for a topic; a blank {redirect} leaves no double space."""
        found = self.topic(topic) if isinstance(topic, str) else topic
        if found is None:
            raise KeyError(f"no topic named {topic!r}")
        values = {"topic": found.label, "description": found.description, "redirect": found.redirect}
        text = _NAMED.sub(lambda match: values.get(match.group(1), match.group(0)), self.refusal)
        return "\n".join(" ".join(line.split()) for line in text.strip().splitlines())

    def to_dict(self) -> dict[str, Any]:
        return {
            "system_prompt": self.system_prompt,
            "refusal": self.refusal,
            "blocked": [topic.to_dict() for topic in self.blocked],
            "allowed": [topic.to_dict() for topic in self.allowed],
            "paraphrases": self.paraphrases,
        }


@dataclass(frozen=True)
class JsonKeys:
    question: str = "question"
    options: str = "options"
    answer: str = "answer"
    explanation: str = "explanation"


@dataclass(frozen=True)
class MCQSpec:
    """Multiple-choice questions: which prompts to ask and the exact format of each answer.

    The defaults are the demo format: "Question: ...", A) to D), "Answer: B", "Explanation: ...".
    """

    kind: ClassVar[str] = "mcq"
    prompt_pattern: str = "Write one multiple-choice question about {topic} at {level} level."
    topics: tuple[str, ...] = ()
    levels: tuple[str, ...] = ()
    system_prompt: str = ""
    output: str = "text"
    options: int = 4
    label_style: str = "A)"
    question_prefix: str = "Question: "
    answer_line: str = "Answer: {label}"
    explanation: bool = True
    explanation_prefix: str = "Explanation: "
    json_keys: JsonKeys = field(default_factory=JsonKeys)

    def labels(self) -> list[str]:
        """The bare labels of the options, e.g. ["A", "B", "C", "D"]."""
        return list(LABEL_STYLES[self.label_style][0][: self.options])

    def option_line(self, label: str, text: str) -> str:
        return LABEL_STYLES[self.label_style][1].format(label=label, text=text)

    def answer_text(self, label: str) -> str:
        return self.answer_line.replace("{label}", label)

    def prompts(self) -> list[tuple[str, str, str]]:
        """(prompt, topic, level) for every topic and level; level is "" when the spec has none."""
        return [
            (self.prompt_pattern.replace("{topic}", topic).replace("{level}", level), topic, level)
            for topic in self.topics
            for level in self.levels or ("",)
        ]

    @staticmethod
    def tags(topic: str, level: str = "") -> list[str]:
        return [f"topic:{topic}", *([f"level:{level}"] if level else [])]

    def render(self, question: str, options: list[str], answer_index: int, explanation: str = "") -> str:
        """A valid response in this format (for tests and the demo)."""
        labels = self.labels()
        if len(options) != self.options:
            raise ValueError(f"expected {self.options} options, got {len(options)}")
        if self.output == "json":
            keys = self.json_keys
            data = {keys.question: question, keys.options: list(options), keys.answer: labels[answer_index]}
            if self.explanation:
                data[keys.explanation] = explanation
            return json.dumps(data, ensure_ascii=False, indent=2)
        lines = [f"{self.question_prefix}{question}"]
        lines += [self.option_line(label, text) for label, text in zip(labels, options, strict=True)]
        lines.append(self.answer_text(labels[answer_index]))
        if self.explanation:
            lines.append(f"{self.explanation_prefix}{explanation}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        return {**data, "topics": list(self.topics), "levels": list(self.levels)}


Spec = GuardrailSpec | MCQSpec


def default_spec(kind: str) -> dict[str, Any]:
    """A sensible starting spec for the "new template" form."""
    if kind == "guardrail":
        return GuardrailSpec(
            system_prompt="You are Acme Kitchen's assistant.",
            refusal="I'm sorry, but I can't help with {topic}. {redirect}",
            blocked=(
                Topic(
                    name="medical-advice",
                    label="medical advice",
                    description="doses, diagnoses, treatments",
                    redirect="Please talk to a doctor or pharmacist.",
                    seeds=("What's the right dose of ibuprofen?",),
                ),
            ),
            allowed=(Topic(name="cooking", label="cooking", seeds=("How long should I boil an egg?",), blocked=False),),
        ).to_dict()
    if kind == "mcq":
        return MCQSpec(topics=("photosynthesis",), levels=("beginner", "intermediate", "advanced")).to_dict()
    raise SpecError([f"kind: must be guardrail or mcq, not {kind!r}"])


def parse_spec(kind: str, data: object) -> Spec:
    """The spec of a template of this kind, or SpecError listing every problem."""
    problems: list[str] = []
    reader = _Reader(problems, data)
    if kind == "guardrail":
        spec: Spec = _guardrail(reader)
    elif kind == "mcq":
        spec = _mcq(reader)
    else:
        raise SpecError([f"kind: must be guardrail or mcq, not {kind!r}"])
    if problems:
        raise SpecError(problems)
    return spec


def spec_or_none(kind: str, data: object) -> Spec | None:
    """A stored spec, or None when it does not parse: nothing is checked against a broken template."""
    try:
        return parse_spec(kind, data)
    except SpecError:
        return None


class _Reader:
    """Reads one JSON object field by field, noting each problem with its path."""

    def __init__(self, problems: list[str], data: object, path: str = "") -> None:
        self.problems, self.path = problems, path
        self.data: dict[str, Any] = data if isinstance(data, dict) else {}
        if not isinstance(data, dict):
            problems.append(f"{path or 'spec'}: must be an object")

    def at(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def fail(self, key: str, message: str) -> None:
        self.problems.append(f"{self.at(key)}: {message}")

    def only(self, keys: tuple[str, ...]) -> None:
        for key in self.data:
            if key not in keys:
                self.fail(str(key), "unknown field")

    def text(self, key: str, *, default: str = "", required: bool = False, one_line: bool = False) -> str:
        value = self.data.get(key, default)
        if not isinstance(value, str):
            self.fail(key, "must be text")
            return default
        if len(value) > SPEC_TEXT_MAX_CHARS:
            self.fail(key, too_long(len(value), SPEC_TEXT_MAX_CHARS))
            return default
        if required and not value.strip():
            self.fail(key, "may not be blank")
        if one_line and "\n" in value:
            self.fail(key, "must be one line")
        return value

    def number(self, key: str, *, default: int, low: int, high: int) -> int:
        value = self.data.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(key, "must be a whole number")
            return default
        if not low <= value <= high:
            self.fail(key, f"must be between {low} and {high}")
        return value

    def flag(self, key: str, *, default: bool) -> bool:
        value = self.data.get(key, default)
        if not isinstance(value, bool):
            self.fail(key, "must be true or false")
            return default
        return value

    def items(self, key: str) -> list[Any]:
        value = self.data.get(key, [])
        if not isinstance(value, list):
            self.fail(key, "must be a list")
            return []
        if len(value) > SPEC_LIST_MAX:
            self.fail(key, f"at most {SPEC_LIST_MAX} items (got {len(value)})")
            return []
        return value

    def texts(self, key: str, *, seen: dict[str, str] | None = None) -> tuple[str, ...]:
        """A list of texts, stripped; a blank one, or one `seen` already (case and spacing aside), is a problem."""
        seen = {} if seen is None else seen
        kept = []
        for index, value in enumerate(self.items(key)):
            path = f"{key}[{index}]"
            if not isinstance(value, str):
                self.fail(path, "must be text")
            elif len(value) > SPEC_TEXT_MAX_CHARS:
                self.fail(path, too_long(len(value), SPEC_TEXT_MAX_CHARS))
            elif not value.strip():
                self.fail(path, "may not be blank")
            elif normalize(value) in seen:
                self.fail(path, f"repeats {seen[normalize(value)]}")
            else:
                seen[normalize(value)] = self.at(path)
                kept.append(value.strip())
        return tuple(kept)

    def children(self, key: str) -> list["_Reader"]:
        return [_Reader(self.problems, item, self.at(f"{key}[{n}]")) for n, item in enumerate(self.items(key))]

    def placeholders(self, key: str, text: str, allowed: tuple[str, ...]) -> set[str]:
        """The {names} a pattern uses; an unknown one is a problem."""
        names = set(_NAMED.findall(text))
        for name in sorted(names - set(allowed)):
            choices = ", ".join(f"{{{known}}}" for known in allowed)
            self.fail(key, f"unknown placeholder {{{name}}}; use {choices}")
        return names


# --- guardrail


def _guardrail(reader: _Reader) -> GuardrailSpec:
    reader.only(GUARDRAIL_KEYS)
    refusal = reader.text("refusal", required=True).strip()
    reader.placeholders("refusal", refusal, REFUSAL_PLACEHOLDERS)
    names: dict[str, str] = {}
    seeds: dict[str, str] = {}  # seeds are unique in the whole template
    blocked = tuple(_topic(child, blocked=True, names=names, seeds=seeds) for child in reader.children("blocked"))
    allowed = tuple(_topic(child, blocked=False, names=names, seeds=seeds) for child in reader.children("allowed"))
    if not blocked:
        reader.fail("blocked", "needs at least one topic to refuse")
    pairs = sum(len(topic.seeds) for topic in blocked + allowed)
    if pairs > SPEC_PAIRS_MAX:
        reader.problems.append(f"spec: generates {pairs} pairs; at most {SPEC_PAIRS_MAX} per template")
    return GuardrailSpec(
        system_prompt=reader.text("system_prompt").strip(),
        refusal=refusal,
        blocked=blocked,
        allowed=allowed,
        paraphrases=reader.number("paraphrases", default=0, low=0, high=MAX_PARAPHRASES),
    )


def _topic(reader: _Reader, *, blocked: bool, names: dict[str, str], seeds: dict[str, str]) -> Topic:
    """One topic; `names` and `seeds` collect what earlier topics used, to keep both unique."""
    reader.only(TOPIC_KEYS)
    name = reader.text("name", required=True).strip()
    if name and not SLUG.fullmatch(name):
        reader.fail("name", "use lower-case letters, digits and hyphens, starting with a letter or digit")
    elif name in names:
        reader.fail("name", f"{name!r} is already the name of {names[name]}")
    names.setdefault(name, reader.path)
    found = reader.texts("seeds", seen=seeds)
    if not reader.items("seeds"):
        reader.fail("seeds", "needs at least one seed prompt")
    return Topic(
        name=name,
        label=reader.text("label").strip() or name.replace("-", " "),
        description=reader.text("description").strip(),
        redirect=reader.text("redirect").strip(),
        seeds=found,
        blocked=blocked,
    )


# --- multiple-choice questions


def _mcq(reader: _Reader) -> MCQSpec:
    reader.only(tuple(item.name for item in fields(MCQSpec)))
    defaults = MCQSpec()
    output = reader.text("output", default=defaults.output)
    if output not in OUTPUTS:
        reader.fail("output", 'must be "text" or "json"')
    style = reader.text("label_style", default=defaults.label_style)
    if style not in LABEL_STYLES:
        reader.fail("label_style", f"must be one of {', '.join(LABEL_STYLES)}")
    topics, levels = reader.texts("topics"), reader.texts("levels")
    if not topics:
        reader.fail("topics", "needs at least one topic")
    elif len(topics) * max(len(levels), 1) > SPEC_PAIRS_MAX:
        pairs = len(topics) * max(len(levels), 1)
        reader.problems.append(f"spec: generates {pairs} pairs; at most {SPEC_PAIRS_MAX} per template")
    explanation = reader.flag("explanation", default=defaults.explanation)
    explanation_prefix = reader.text("explanation_prefix", default=defaults.explanation_prefix, one_line=True)
    if explanation and output == "text" and not explanation_prefix.strip():
        reader.fail("explanation_prefix", "may not be blank while explanations are on")
    return MCQSpec(
        prompt_pattern=_prompt_pattern(reader, has_levels=bool(levels)),
        topics=topics,
        levels=levels,
        system_prompt=reader.text("system_prompt").strip(),
        output=output if output in OUTPUTS else defaults.output,
        options=reader.number("options", default=defaults.options, low=MIN_OPTIONS, high=MAX_OPTIONS),
        label_style=style if style in LABEL_STYLES else defaults.label_style,
        question_prefix=reader.text("question_prefix", default=defaults.question_prefix, one_line=True),
        answer_line=_answer_line(reader),
        explanation=explanation,
        explanation_prefix=explanation_prefix,
        json_keys=_json_keys(reader),
    )


def _prompt_pattern(reader: _Reader, *, has_levels: bool) -> str:
    pattern = reader.text("prompt_pattern", default=MCQSpec.prompt_pattern, required=True).strip()
    names = reader.placeholders("prompt_pattern", pattern, ("topic", "level"))
    if pattern and "topic" not in names:
        reader.fail("prompt_pattern", "must contain {topic}")
    if has_levels and "level" not in names:
        reader.fail("prompt_pattern", "must contain {level} since levels are given")
    if not has_levels and "level" in names:
        reader.fail("prompt_pattern", "uses {level} but no levels are given")
    return pattern


def _answer_line(reader: _Reader) -> str:
    line = reader.text("answer_line", default=MCQSpec.answer_line, required=True, one_line=True).strip()
    reader.placeholders("answer_line", line, ("label",))
    if line and line.count("{label}") != 1:
        reader.fail("answer_line", "must contain {label} once")
    elif line and not line.replace("{label}", "").strip():
        reader.fail("answer_line", "needs text around {label}, e.g. 'Answer: {label}'")
    return line


def _json_keys(reader: _Reader) -> JsonKeys:
    keys = _Reader(reader.problems, reader.data.get("json_keys", {}), reader.at("json_keys"))
    names = tuple(item.name for item in fields(JsonKeys))
    keys.only(names)
    values = {name: keys.text(name, default=name, required=True).strip() for name in names}
    seen: dict[str, str] = {}
    for name, value in values.items():
        if value and value in seen:
            keys.fail(name, f"{value!r} is already the key of {seen[value]}")
        seen.setdefault(value, name)
    return JsonKeys(**values)
