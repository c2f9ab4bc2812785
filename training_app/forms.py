"""The new-run form: it parses what the browser sends; the ranges and the rules live in services.run_create."""

import json
import re
from typing import Any

from django import forms
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db.models import QuerySet

from datasets_app.blueprints.generators import generator_choices
from datasets_app.models import Dataset, Workspace
from datasets_app.views.blueprint_forms import UNKNOWN_GENERATOR
from training_app.ml.config import METHODS, validate_config
from training_app.models import PREFERENCE_OBJECTIVES, Objective, TrainingRun
from training_app.services import default_hyperparameters

METHOD_LABELS = {
    "lora": "LoRA (adapter, fast, small artifact)",
    "full": "Full fine-tune (all weights)",
    "qlora": "QLoRA (4-bit base, LoRA adapter: least memory)",
}

# (field, label, help) in the order the form shows them; the type comes from the default value.
TRAINING_FIELDS = [
    ("epochs", "Epochs", "Passes over the training split."),
    ("learning_rate", "Learning rate", "Peak learning rate (linear decay after warm-up)."),
    ("batch_size", "Batch size", "Pairs per step."),
    ("grad_accum", "Gradient accumulation", "Batches summed per optimizer step."),
    ("max_seq_len", "Max sequence length", "Tokens per pair; longer pairs are truncated."),
    ("warmup_ratio", "Warm-up ratio", "Share of steps spent warming up the learning rate."),
    ("seed", "Seed", "Same seed, same data, same result."),
]
LORA_FIELDS = [
    ("lora_r", "LoRA rank (r)", "Adapter size."),
    ("lora_alpha", "LoRA alpha", "Scale of the adapter's update (often 2 × r)."),
    ("lora_dropout", "LoRA dropout", "Dropout on the adapter's input."),
]
PREFERENCE_FIELDS = [
    ("beta", "Beta (β)", "DPO: how far the model may move from the starting one; ORPO: the weight of the "
     "preference term. Preference objectives only."),
]  # fmt: skip
TARGET_MODULES = "lora_target_modules"
_SEPARATORS = re.compile(r"[\s,]+")


def base_model_choices() -> list[tuple[str, str]]:
    return [(name, spec.get("label", name)) for name, spec in settings.BASE_MODELS.items()]


def _number_field(default: Any, label: str, help_text: str) -> forms.Field:
    attrs = {"class": "tr-number"}
    if isinstance(default, int):
        return forms.IntegerField(label=label, help_text=help_text, widget=forms.NumberInput(attrs=attrs))
    return forms.FloatField(label=label, help_text=help_text, widget=forms.NumberInput(attrs={**attrs, "step": "any"}))


class RunForm(forms.Form):
    """Dataset, base model, method and hyperparameters of a new run, with the project's defaults filled in."""

    dataset = forms.ModelChoiceField(queryset=Dataset.objects.none(), empty_label="Choose a dataset…")
    validation_fraction = forms.FloatField(
        label="Validation fraction",
        initial=0.1,
        help_text="Share of approved pairs held out to evaluate before and after training.",
        widget=forms.NumberInput(attrs={"step": "any", "class": "tr-number"}),
    )
    base_model = forms.ChoiceField(label="Base model", choices=base_model_choices)
    method = forms.ChoiceField(
        label="Method",
        choices=[(m, METHOD_LABELS.get(m, m)) for m in METHODS],
        initial="lora",
        widget=forms.RadioSelect,
    )

    objective = forms.TypedChoiceField(
        label="Objective",
        choices=Objective.choices,
        initial=Objective.SFT,
        required=False,
        empty_value=Objective.SFT,
        help_text="Supervised on single answers, or preference tuning on a preference dataset's chosen and rejected "
        "answers. Changing it puts in its default epochs and learning rate.",
    )
    init_run = forms.ModelChoiceField(
        queryset=TrainingRun.objects.none(),
        required=False,
        label="Start from",
        empty_label="The base model",
        help_text="A succeeded LoRA or QLoRA run of the same workspace and base model: its adapter is merged and a new one "
        "trained over it (supervised first, then preferences).",
    )

    def __init__(
        self,
        *args: Any,
        visible: QuerySet[Dataset],
        trainable: QuerySet[Dataset],
        visible_runs: QuerySet[TrainingRun] | None = None,
        startable_runs: QuerySet[TrainingRun] | None = None,
        **kwargs: Any,
    ) -> None:
        """`visible` datasets are accepted (the service decides who may train on them); `trainable` ones are offered.
        The same for runs to start from: `visible_runs` accepted, `startable_runs` offered."""
        defaults = {**default_hyperparameters(Objective.SFT), "beta": default_hyperparameters(Objective.DPO)["beta"]}
        kwargs.setdefault("initial", {})
        kwargs["initial"] = {
            **defaults,
            TARGET_MODULES: ", ".join(defaults[TARGET_MODULES]),
            "base_model": settings.DEFAULT_BASE_MODEL,
            **kwargs["initial"],
        }
        super().__init__(*args, **kwargs)
        for name, label, help_text in TRAINING_FIELDS + LORA_FIELDS + PREFERENCE_FIELDS:
            self.fields[name] = _number_field(defaults[name], label, help_text)
        self.fields["beta"].required = False
        self.fields["objective"].widget.attrs["data-defaults"] = json.dumps(
            {objective: default_hyperparameters(objective) for objective in Objective.values}
        )
        init_run = self.fields["init_run"]
        assert isinstance(init_run, forms.ModelChoiceField)
        init_run.queryset = visible_runs if visible_runs is not None else TrainingRun.objects.none()
        offered = startable_runs if startable_runs is not None else TrainingRun.objects.none()
        init_run.widget.choices = [("", init_run.empty_label)] + [
            (run.pk, _run_label(run)) for run in offered.select_related("snapshot__dataset__workspace")
        ]
        self.fields[TARGET_MODULES] = forms.CharField(
            label="LoRA target modules", help_text="Module names, separated by commas.", max_length=500
        )
        dataset = self.fields["dataset"]
        assert isinstance(dataset, forms.ModelChoiceField)
        dataset.queryset = visible
        dataset.label_from_instance = lambda d: f"{d.workspace.name} / {d.name}"  # type: ignore[method-assign]
        dataset.widget.choices = [("", dataset.empty_label)] + [
            (d.pk, dataset.label_from_instance(d)) for d in trainable.select_related("workspace")
        ]

    def training_fields(self) -> list[forms.BoundField]:
        return [self[name] for name, _, _ in TRAINING_FIELDS]

    def preference_fields(self) -> list[forms.BoundField]:
        return [self[name] for name, _, _ in PREFERENCE_FIELDS]

    def objective_defaults_text(self) -> str:
        """The defaults each objective fills in, as the form shows them under the objective."""
        texts = []
        for objective in Objective.values:
            values = default_hyperparameters(objective)
            texts.append(f"{objective}: {values['epochs']} epochs, learning rate {values['learning_rate']:g}")
        return "; ".join(texts)

    def lora_fields(self) -> list[forms.BoundField]:
        return [*(self[name] for name, _, _ in LORA_FIELDS), self[TARGET_MODULES]]

    def hyperparameters(self) -> dict[str, Any]:
        """The parsed hyperparameters (those that parsed, when the form has errors)."""
        values = {
            name: self.cleaned_data[name] for name, _, _ in TRAINING_FIELDS + LORA_FIELDS if name in self.cleaned_data
        }
        if TARGET_MODULES in self.cleaned_data:
            values[TARGET_MODULES] = [m for m in _SEPARATORS.split(self.cleaned_data[TARGET_MODULES]) if m]
        beta = self.cleaned_data.get("beta")
        if self.cleaned_data.get("objective") in PREFERENCE_OBJECTIVES and beta is not None:
            values["beta"] = beta  # a supervised run has none: the field is ignored then
        return values

    def clean(self) -> dict[str, Any]:
        """The training library's own range checks, so every problem shows at once (run_create checks them again)."""
        cleaned = super().clean()
        for field, message in validate_config(self.hyperparameters()):
            self.add_error(field if field in self.fields else None, message)
        return cleaned

    def add_service_errors(self, error: ValidationError) -> None:
        """Put run_create's errors ("hyperparameters.learning_rate", "base_model", "dataset", ...) next to their fields."""
        problems = error.message_dict if hasattr(error, "error_dict") else {"__all__": error.messages}
        for key, messages in problems.items():
            field = key.removeprefix("hyperparameters.")
            for message in messages:
                if field in self.fields:
                    self.add_error(field, message)
                else:
                    self.add_error(None, message if field in ("__all__", "snapshot") else f"{field}: {message}")


def _run_label(run: TrainingRun) -> str:
    return f"Run #{run.pk}: {run.snapshot.dataset.workspace.name} / {run.snapshot.dataset.name}, {run.objective}, {run.base_model}"


AS_IS = "as-is"


class SendFailuresForm(forms.Form):
    """The run page's "Send failures to annotators": how the prompts go, into which dataset, and (a row's Send
    button) which evaluated prompt alone."""

    prompts = forms.ChoiceField(label="Prompts", error_messages=UNKNOWN_GENERATOR)
    dataset = forms.ModelChoiceField(queryset=Dataset.objects.none(), label="Into", empty_label=None)
    item = forms.IntegerField(required=False, min_value=1, max_value=2**63 - 1)

    def __init__(self, *args: Any, datasets: QuerySet[Dataset], workspace: Workspace, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        reworded = [
            (key, f"Reworded by {label} (keeps the evaluation set clean)")
            for key, label in generator_choices(workspace=workspace)
        ]
        self.fields["prompts"].choices = [*reworded, (AS_IS, "As they are (the lint flags them: eval_overlap)")]
        self.fields["dataset"].queryset = datasets
        if settings.DEFAULT_GENERATOR not in dict(reworded):
            self.fields["prompts"].initial = AS_IS
        else:
            self.fields["prompts"].initial = settings.DEFAULT_GENERATOR


class VotesToPairsForm(forms.Form):
    """ "Make preference pairs" (the comparison page's blind judgement rows, the run page): into which preference
    dataset, from the votes against which model ("base" or a run id; the service checks it)."""

    dataset = forms.ModelChoiceField(queryset=Dataset.objects.none(), label="Into", empty_label=None)
    against = forms.CharField(max_length=20, required=False, initial="base")

    def __init__(self, *args: Any, datasets: QuerySet[Dataset], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["dataset"].queryset = datasets
