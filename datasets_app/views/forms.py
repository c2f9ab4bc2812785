"""Forms of the HTML pages: they parse and check input; services do the writing."""

from typing import Any

from django import forms
from django.http import QueryDict

from datasets_app.curation.limits import TEXT_MAX_CHARS, pair_text_errors
from datasets_app.curation.queues import BULK_ACTIONS, QUEUE_STATUSES
from datasets_app.formats import IMPORT_FORMATS, PREFERENCE_FORMATS
from datasets_app.models import HISTORY_ROLES, DatasetKind, ExampleSplit, ExampleStatus, Role

MAX_BULK_SELECTION = 1000


class TextField(forms.CharField):
    """Pair text exactly as typed: no stripping, but browsers' CRLF line ends become LF (else every save changes it)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(required=False, strip=False, **kwargs)

    def to_python(self, value: Any) -> str:
        text = super().to_python(value).replace("\r\n", "\n").replace("\r", "\n")
        if "\x00" in text:
            raise forms.ValidationError("The text contains a NUL character, which cannot be stored.")
        return text


def parse_tags(text: str) -> list[str]:
    """'a, b,, a' -> ['a', 'b']: comma-separated, trimmed, without blanks or repeats, in the order given."""
    tags: list[str] = []
    for tag in (part.strip() for part in text.split(",")):
        if tag and tag not in tags:
            tags.append(tag)
    return tags


def posted_turns(data: QueryDict) -> list[dict[str, Any]]:
    """The earlier turns as posted (lists turn_role, turn_content, turn_weight), not yet checked.

    Each turn posts a hidden turn_weight "0" and, when its "Train on this turn" box is checked, the box's value
    after it: "1" for a turn stored with weight 1, "" for one without a weight (trained on just the same). Only
    an assistant turn keeps a weight.
    """
    weights: list[int | None] = []
    for value in data.getlist("turn_weight"):
        if value == "0":
            weights.append(0)
        elif weights:
            weights[-1] = 1 if value == "1" else None
    turns = []
    for index, (role, content) in enumerate(zip(data.getlist("turn_role"), data.getlist("turn_content"), strict=False)):
        weight = weights[index] if index < len(weights) else None
        turns.append(
            {
                "role": role,
                "content": content,
                **({"weight": weight} if role == "assistant" and weight is not None else {}),
            }
        )
    return turns


class ExampleFieldsForm(forms.Form):
    """The text of a pair: system prompt, earlier turns (see posted_turns), prompt, response, tags; and a preference
    pair's rejected answer (`response` is its chosen one)."""

    system_prompt = TextField()
    prompt = TextField()
    response = TextField()
    rejected = TextField()
    tags = forms.CharField(required=False, max_length=2000)

    def clean_tags(self) -> list[str]:
        return parse_tags(self.cleaned_data["tags"])

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        turns = []
        for turn in posted_turns(self.data):
            role, content = turn["role"], turn["content"].replace("\r\n", "\n").replace("\r", "\n")
            if not content.strip():
                continue  # an emptied turn is a removed turn
            if role not in HISTORY_ROLES:
                self.add_error(
                    None, f"An earlier turn has the role {role!r}; expected one of {', '.join(HISTORY_ROLES)}."
                )
                continue
            if "\x00" in content:
                self.add_error(None, "An earlier turn contains a NUL character, which cannot be stored.")
                continue
            turns.append({**turn, "content": content})
        cleaned["history"] = turns
        self._check_lengths(cleaned)
        return cleaned

    def _check_lengths(self, cleaned: dict[str, Any]) -> None:
        """Each text within PAIR_TEXT_MAX_CHARS (limits.py); the error goes beside its field."""
        texts = {name: cleaned[name] for name in ("system_prompt", "prompt", "response", "rejected") if name in cleaned}
        errors = pair_text_errors(**texts, history=cleaned["history"], tags=cleaned.get("tags") or [])
        for name, message in errors.items():
            if name in self.fields:
                self.add_error(name, message)
            elif name.startswith("history["):
                turn = int(name[len("history[") : -1]) + 1
                self.add_error(None, f"Earlier turn {turn}: {message}")
            else:
                self.add_error("tags" if name.startswith("tags") else None, f"{name}: {message}")

    def fields_for_service(self) -> dict[str, Any]:
        names = ("system_prompt", "prompt", "response", "rejected", "history", "tags")
        return {name: self.cleaned_data[name] for name in names}


class EditorForm(ExampleFieldsForm):
    """The editor's save: the text plus the version it was loaded at and what to do after saving."""

    INTENTS = ("save", "save_next", "submit", "approve", "reject", "reopen", "swap")

    version = forms.IntegerField(min_value=1, widget=forms.HiddenInput)
    intent = forms.ChoiceField(choices=[(intent, intent) for intent in INTENTS], initial="save")
    comment = forms.CharField(required=False, max_length=TEXT_MAX_CHARS["comment"])
    queue = forms.ChoiceField(choices=[("", "")] + [(queue, queue) for queue in QUEUE_STATUSES], required=False)

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        if cleaned.get("intent") == "reject" and not (cleaned.get("comment") or "").strip():
            self.add_error("comment", "Say what to fix: a rejection needs a comment.")
        return cleaned

    @property
    def action(self) -> str | None:
        """The status action the intent asks for, if any."""
        intent = self.cleaned_data["intent"]
        return intent if intent in ("submit", "approve", "reject", "reopen") else None


class NewExampleForm(ExampleFieldsForm):
    intent = forms.ChoiceField(choices=[("draft", "draft"), ("submit", "submit"), ("another", "another")])

    @property
    def status(self) -> str:
        return ExampleStatus.SUBMITTED if self.cleaned_data["intent"] == "submit" else ExampleStatus.DRAFT


class BulkForm(forms.Form):
    """An action on the checked pairs; each checkbox carries 'id:version' so pairs changed since are skipped."""

    action = forms.ChoiceField(choices=[(action, action) for action in BULK_ACTIONS])
    comment = forms.CharField(required=False, max_length=TEXT_MAX_CHARS["comment"])
    tag = forms.CharField(required=False, max_length=200)
    confirm = forms.BooleanField(required=False)

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        versions: dict[int, int] = {}
        for item in self.data.getlist("selected")[:MAX_BULK_SELECTION]:
            pk, _, version = item.partition(":")
            if pk.isdigit() and version.isdigit() and len(pk) <= 18 and len(version) <= 9:
                versions[int(pk)] = int(version)
        if not versions:
            raise forms.ValidationError("Select at least one pair first.")
        cleaned["versions"] = versions
        action = cleaned.get("action")
        if action == "reject" and not (cleaned.get("comment") or "").strip():
            self.add_error("comment", "Say what to fix: a rejection needs a comment.")
        if action in ("add_tag", "remove_tag") and not (cleaned.get("tag") or "").strip():
            self.add_error("tag", "Name the tag.")
        return cleaned


class ImportForm(forms.Form):
    """An upload; a preference dataset offers the preference formats (`preference`), any other the rest."""

    file = forms.FileField(allow_empty_file=True)
    format = forms.ChoiceField(
        choices=[("", "Detect from the file")] + [(fmt, fmt) for fmt in (*IMPORT_FORMATS, "csv")], required=False
    )
    on_duplicate = forms.ChoiceField(
        choices=[("skip", "Skip pairs the dataset already has"), ("keep", "Keep them as well")], required=False
    )
    status = forms.ChoiceField(
        choices=[("draft", "Draft"), ("submitted", "Submitted"), ("approved", "Approved (leads)")], required=False
    )
    split = forms.ChoiceField(choices=ExampleSplit.choices, required=False)

    def __init__(self, *args: Any, preference: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if preference:
            formats = [(fmt, fmt) for fmt in PREFERENCE_FORMATS]
            self.fields["format"].choices = [("", "Detect from the file"), *formats]  # type: ignore[attr-defined]

    def clean_split(self) -> str:
        return self.cleaned_data["split"] or ExampleSplit.TRAIN

    def clean_on_duplicate(self) -> str:
        return self.cleaned_data["on_duplicate"] or "skip"

    def clean_status(self) -> str:
        return self.cleaned_data["status"] or "draft"


class DatasetForm(forms.Form):
    """A new dataset: its name, kind and description (leads)."""

    name = forms.CharField(max_length=TEXT_MAX_CHARS["name"])
    kind = forms.ChoiceField(choices=DatasetKind.choices, initial=DatasetKind.GENERAL, widget=forms.RadioSelect)
    description = forms.CharField(required=False, max_length=TEXT_MAX_CHARS["description"], widget=forms.Textarea)


class InviteForm(forms.Form):
    """A username to invite and the role offered; whether anyone has that name is never said."""

    username = forms.CharField(max_length=TEXT_MAX_CHARS["username"])
    role = forms.ChoiceField(choices=Role.choices, initial=Role.ANNOTATOR)


class RoleForm(forms.Form):
    """A member's new role."""

    username = forms.CharField(max_length=TEXT_MAX_CHARS["username"])
    role = forms.ChoiceField(choices=Role.choices)
