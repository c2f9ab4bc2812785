"""Forms of the template pages: a template's spec as real fields (not JSON), and the preview/generate choices.

A spec travels through the edit form as plain fields: `refusal`, `blocked-0-name`, `blocked-0-seeds` (one
seed a line), `topics` (one a line), `json_keys-answer`... `spec_from_post` turns them back into the spec
dict the services check; `spec_fields` turns a spec (and its problems) into what the page shows.
"""

import re
from dataclasses import dataclass, field, fields
from typing import Any

from django import forms
from django.db.models import QuerySet
from django.http import QueryDict

from datasets_app.blueprints.generators import generator_choices
from datasets_app.blueprints.specs import (
    LABEL_STYLES,
    MAX_OPTIONS,
    MAX_PARAPHRASES,
    MIN_OPTIONS,
    OUTPUTS,
    REFUSAL_PLACEHOLDERS,
    JsonKeys,
)
from datasets_app.curation.limits import TEXT_MAX_CHARS
from datasets_app.models import Dataset, Template, TemplateKind, Workspace
from datasets_app.views.forms import TextField

TOPIC_LISTS = ("blocked", "allowed")
TOPIC_FIELDS = {"blocked": ("name", "label", "description", "redirect"), "allowed": ("name", "label", "description")}
MAX_TOPICS = 200
GENERAL = "general"  # problems of a whole spec or topic, not of one field
MCQ_TEXT = ("system_prompt", "prompt_pattern", "question_prefix", "answer_line", "explanation_prefix")
JSON_KEY_NAMES = tuple(item.name for item in fields(JsonKeys))
_TOPIC_KEY = re.compile(r"^(blocked|allowed)-(\d{1,3})-(\w+)$")
_PROBLEM_PATH = re.compile(r"^(\w+)(?:\[(\d+)\])?(?:\.(\w+)(?:\[(\d+)\])?)?$")


def _text(value: str) -> str:
    return value.replace("\r\n", "\n").replace("\r", "\n")


def _lines(value: str) -> list[str]:
    """A textarea with one item a line: the non-blank lines, trimmed."""
    return [line.strip() for line in _text(value).split("\n") if line.strip()]


def _number(data: QueryDict, name: str, errors: dict[str, list[str]]) -> int | str:
    raw = (data.get(name) or "").strip()
    if raw.isdigit() and len(raw) < 6:
        return int(raw)
    errors[name] = ["must be a whole number"]
    return raw


@dataclass
class PostedSpec:
    """A spec read from the edit form; `errors` holds what could not even be read (e.g. a number that is not one)."""

    spec: dict[str, Any]
    errors: dict[str, list[str]] = field(default_factory=dict)


def spec_from_post(kind: str, data: QueryDict, *, drop_blank_topics: bool = False) -> PostedSpec:
    """The spec the edit form describes; `drop_blank_topics` leaves out topics left wholly empty (on save)."""
    errors: dict[str, list[str]] = {}
    if kind == TemplateKind.GUARDRAIL:
        spec: dict[str, Any] = {
            "system_prompt": _text(data.get("system_prompt", "")),
            "refusal": _text(data.get("refusal", "")),
            "paraphrases": _number(data, "paraphrases", errors),
        }
        for name in TOPIC_LISTS:
            topics = _topics_from_post(data, name)
            spec[name] = [topic for topic in topics if not _blank(topic)] if drop_blank_topics else topics
        return PostedSpec(spec, errors)
    spec = {name: _text(data.get(name, "")) for name in MCQ_TEXT}
    spec.update(
        topics=_lines(data.get("topics", "")),
        levels=_lines(data.get("levels", "")),
        output=data.get("output", ""),
        label_style=data.get("label_style", ""),
        options=_number(data, "options", errors),
        explanation=data.get("explanation") == "on",
        json_keys={key: data.get(f"json_keys-{key}", "").strip() for key in JSON_KEY_NAMES},
    )
    return PostedSpec(spec, errors)


def _topics_from_post(data: QueryDict, name: str) -> list[dict[str, Any]]:
    """The topics of one list in the order of their index; gaps (a removed topic) close up."""
    indexes = sorted({int(match[2]) for key in data if (match := _TOPIC_KEY.match(key)) and match[1] == name})
    topics = []
    for index in indexes[:MAX_TOPICS]:
        topic: dict[str, Any] = {
            key: _text(data.get(f"{name}-{index}-{key}", "")).strip() for key in TOPIC_FIELDS[name]
        }
        topic["seeds"] = _lines(data.get(f"{name}-{index}-seeds", ""))
        topics.append(topic)
    return topics


def _blank(topic: dict[str, Any]) -> bool:
    return not any(topic.values())


def empty_topic(name: str) -> dict[str, Any]:
    return {**dict.fromkeys(TOPIC_FIELDS[name], ""), "seeds": []}


@dataclass
class FieldErrors:
    """Spec problems sorted to where the form shows them: a top-level field, or one field of one topic."""

    fields: dict[str, list[str]] = field(default_factory=dict)
    topics: dict[tuple[str, int], dict[str, list[str]]] = field(default_factory=dict)
    summary: list[str] = field(default_factory=list)  # every problem as one line naming its field

    def add(self, problem: str) -> None:
        """`blocked[1].seeds[0]: may not be blank` goes to topic blocked 1, field seeds (as "line 1: may not
        be blank"); `json_keys.answer: ...` to json_keys (as "answer: ..."); `refusal: ...` to refusal."""
        self.summary.append(problem)
        path, _, message = problem.partition(": ")
        match = _PROBLEM_PATH.match(path)
        if match is None or not message:
            self.fields.setdefault(GENERAL, []).append(problem)
            return
        name, index, child, child_index = match.groups()
        if name in TOPIC_LISTS and index is not None:
            where = self.topics.setdefault((name, int(index)), {})
            where.setdefault(child or GENERAL, []).append(_at_line(child_index, message))
        elif child:
            self.fields.setdefault(name, []).append(f"{child}: {message}")
        else:
            self.fields.setdefault(name, []).append(_at_line(index, message))

    def add_local(self, name: str, messages: list[str]) -> None:
        name = GENERAL if name == "__all__" else name
        self.fields.setdefault(name, []).extend(messages)
        self.summary += [message if name == GENERAL else f"{name}: {message}" for message in messages]


def _at_line(index: str | None, message: str) -> str:
    """An item of a one-a-line list (seeds, topics, levels) is named by its line in the textarea."""
    return f"line {int(index) + 1}: {message}" if index is not None else message


def field_errors(problems: list[str], local: dict[str, list[str]] | None = None) -> FieldErrors:
    """Spec problems plus problems found here, e.g. a form's errors (its "__all__" becomes GENERAL)."""
    errors = FieldErrors()
    for name, messages in (local or {}).items():
        errors.add_local(name, list(messages))
    for problem in problems:
        errors.add(problem)
    return errors


def spec_fields(kind: str, spec: dict[str, Any], errors: FieldErrors) -> dict[str, Any]:
    """What the edit page shows: every value as the form field wants it, with the problems beside it."""
    values: dict[str, Any] = {"errors": errors.fields}
    if kind == TemplateKind.GUARDRAIL:
        values.update(
            system_prompt=spec.get("system_prompt", ""),
            refusal=spec.get("refusal", ""),
            paraphrases=spec.get("paraphrases", 0),
            placeholders=[f"{{{name}}}" for name in REFUSAL_PLACEHOLDERS],
            max_paraphrases=MAX_PARAPHRASES,
        )
        for name in TOPIC_LISTS:
            values[name] = [
                {**topic, "index": index, "prefix": f"{name}-{index}", "seeds_text": "\n".join(topic.get("seeds", [])),
                 "errors": errors.topics.get((name, index), {})}
                for index, topic in enumerate(spec.get(name, []))
            ]  # fmt: skip
        return values
    values.update({name: spec.get(name, "") for name in MCQ_TEXT})
    keys = spec.get("json_keys") or {}
    values.update(
        topics_text="\n".join(spec.get("topics", [])),
        levels_text="\n".join(spec.get("levels", [])),
        output=spec.get("output", "text"),
        options=spec.get("options", 4),
        label_style=spec.get("label_style", "A)"),
        explanation=spec.get("explanation", True),
        json_keys=[{"name": name, "value": keys.get(name, name)} for name in JSON_KEY_NAMES],
        outputs=OUTPUTS,
        label_styles=list(LABEL_STYLES),
        option_counts=list(range(MIN_OPTIONS, MAX_OPTIONS + 1)),
    )
    return values


class TemplateNewForm(forms.Form):
    name = forms.CharField(max_length=200)
    kind = forms.ChoiceField(choices=TemplateKind.choices, widget=forms.RadioSelect, initial=TemplateKind.GUARDRAIL)
    description = TextField(max_length=TEXT_MAX_CHARS["description"], widget=forms.Textarea(attrs={"rows": 2}))


class TemplateMetaForm(forms.Form):
    """The parts of the edit form that are not the spec: name, description and the version it was loaded at."""

    name = forms.CharField(max_length=200)
    description = TextField(max_length=TEXT_MAX_CHARS["description"])
    version = forms.IntegerField(min_value=1, max_value=2**31 - 1)


# A stale page may offer a fine-tuned model that was deleted since: say which, in words.
UNKNOWN_GENERATOR = {
    "invalid_choice": "The model %(value)s is not available in this workspace (deleted, or its run did not succeed)."
}


class GenerateForm(forms.Form):
    """Where to generate (or preview) into, with which model, and how many rewordings per seed prompt."""

    dataset = forms.ModelChoiceField(queryset=Dataset.objects.none(), empty_label=None)
    generator = forms.ChoiceField(required=False, error_messages=UNKNOWN_GENERATOR)
    paraphrases = forms.IntegerField(min_value=0, max_value=MAX_PARAPHRASES, required=False)

    def __init__(self, *args: Any, datasets: QuerySet[Dataset], template: Template, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["dataset"].queryset = datasets
        self.choices = generator_choices(workspace=template.workspace)
        self.fields["generator"].choices = [("", "No model: leave responses for annotators"), *self.choices]
        self.fields["paraphrases"].initial = template.spec.get("paraphrases", 0)
        if template.kind != TemplateKind.GUARDRAIL:
            del self.fields["paraphrases"]

    def generator_label(self) -> str:
        key = self.cleaned_data.get("generator") or ""
        return dict(self.choices).get(key, "")


class DraftForm(forms.Form):
    """The dataset page's "draft responses with a model": the checked pairs ('id:version') and a backend."""

    generator = forms.ChoiceField(required=False, error_messages=UNKNOWN_GENERATOR)

    def __init__(self, *args: Any, workspace: Workspace, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["generator"].choices = generator_choices(workspace=workspace)

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        ids = []
        for item in self.data.getlist("selected")[:1000]:
            pk = item.partition(":")[0]
            if pk.isdigit() and len(pk) <= 18:
                ids.append(int(pk))
        if not ids:
            raise forms.ValidationError("Select at least one pair first.")
        cleaned["example_ids"] = ids
        return cleaned


class DatasetSettingsForm(forms.Form):
    """A dataset's checks (leads): which template checks its pairs, whether failing ones may be approved, and whether
    a snapshot may train on prompts of the evaluation set."""

    template = forms.ModelChoiceField(
        queryset=Template.objects.none(), required=False, empty_label="None: only the general checks"
    )
    require_valid = forms.BooleanField(
        required=False, label="Refuse approval of pairs that fail the template's validator"
    )
    refuse_eval_overlap = forms.BooleanField(
        required=False,
        label="Refuse snapshots (and so runs) in which a training pair's prompt repeats an evaluation pair's",
    )

    def __init__(self, *args: Any, templates: QuerySet[Template], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["template"].queryset = templates
