"""REST representations of snapshots, runs, metrics and the playground."""

from typing import Any

from django.conf import settings
from django.urls import reverse
from drf_spectacular.utils import PolymorphicProxySerializer, extend_schema_field
from rest_framework import serializers

from datasets_app.api.blueprints import UNKNOWN_GENERATOR
from datasets_app.api.serializers import JsonTypes, VisibleRelatedField
from datasets_app.blueprints.generators import generator_choices
from datasets_app.curation.selectors import dataset_list
from datasets_app.models import Dataset
from training_app.failures import MAX_ITEMS
from training_app.ml.config import MAX_SEQ_LEN, MIN_SEQ_LEN, settings_schema
from training_app.models import (
    DatasetVersion,
    EvalItem,
    Objective,
    PlaygroundRequest,
    PlaygroundStatus,
    RunLog,
    RunMetric,
    TrainingRun,
)
from training_app.selectors import key_metric, latest_metric

ID_MAX = 2**63 - 1  # a larger number cannot be a row id (and is a 400, not a database error)


class SnapshotSerializer(serializers.ModelSerializer):
    download_url = serializers.SerializerMethodField()
    eval_hash = serializers.SerializerMethodField(
        help_text="A hash of the evaluation pairs' content, the same for the same pairs in any order; null without any."
    )

    class Meta:
        model = DatasetVersion
        fields = ["id", "dataset", "number", "kind", "content_hash", "seed", "validation_fraction", "n_train", "n_validation",
                  "n_eval", "eval_hash", "eval_overlap", "created_at", "download_url"]  # fmt: skip

    def get_download_url(self, snapshot: DatasetVersion) -> str:
        return reverse("api-snapshot-download", args=[snapshot.pk])

    def get_eval_hash(self, snapshot: DatasetVersion) -> str | None:
        return snapshot.eval_hash or None


class SnapshotCreateSerializer(JsonTypes, serializers.Serializer):
    validation_fraction = serializers.FloatField(default=0.1, min_value=0.01, max_value=0.9)
    seed = serializers.IntegerField(default=42, min_value=0, max_value=2**31 - 1)


def _hyperparameters_schema() -> dict:
    """The training settings a run's `hyperparameters` take: objective is a field of its own beside them."""
    schema = settings_schema()
    schema["properties"].pop("objective", None)
    return schema


@extend_schema_field(_hyperparameters_schema())
class HyperparametersField(serializers.DictField):
    """Training settings over the defaults; validate_config checks each (the schema says what it accepts)."""


class RunSettingsSerializer(JsonTypes, serializers.Serializer):
    base_model = serializers.ChoiceField(
        choices=[], required=False, allow_blank=True, default="", help_text="Empty: the workspace's default."
    )
    method = serializers.ChoiceField(
        choices=TrainingRun._meta.get_field("method").choices, required=False, default="lora"
    )
    objective = serializers.ChoiceField(
        choices=Objective.choices, required=False, default=Objective.SFT,
        help_text="sft: supervised, on a non-preference dataset; dpo or orpo: preference tuning, on a preference "
        "dataset (chosen over rejected answers). Settings left out take the objective's defaults.",
    )  # fmt: skip
    init_run = serializers.IntegerField(
        min_value=1, max_value=ID_MAX, required=False, allow_null=True, default=None,
        help_text="Start from this run's model instead of the base model: a succeeded LoRA or QLoRA run of the same "
        "workspace and base model (its adapter is merged, a new one trained over it).",
    )  # fmt: skip
    hyperparameters = HyperparametersField(required=False, default=dict)
    validation_fraction = serializers.FloatField(
        default=0.1, min_value=0.01, max_value=0.9, help_text="For a fresh snapshot of a dataset."
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["base_model"].choices = list(settings.BASE_MODELS)  # read now: settings may change


def snapshot_id(**kwargs: Any) -> serializers.IntegerField:
    return serializers.IntegerField(min_value=1, max_value=ID_MAX, help_text="Train on this snapshot.", **kwargs)


def dataset_id(**kwargs: Any) -> serializers.IntegerField:
    return serializers.IntegerField(
        min_value=1, max_value=ID_MAX, help_text="Train on a fresh snapshot of this dataset.", **kwargs
    )


class RunCreateSerializer(RunSettingsSerializer):
    """A new run: on a snapshot, or on a fresh snapshot of a dataset (exactly one of them)."""

    snapshot = snapshot_id(required=False)
    dataset = dataset_id(required=False)

    def validate(self, attrs: dict) -> dict:
        if ("snapshot" in attrs) == ("dataset" in attrs):
            raise serializers.ValidationError("give exactly one of snapshot or dataset")
        return attrs


class RunOnSnapshotSerializer(RunSettingsSerializer):
    snapshot = snapshot_id()


class RunOnDatasetSerializer(RunSettingsSerializer):
    dataset = dataset_id()


# What the API documents for a new run: one of the two (a body naming both matches both, so it is refused too).
RUN_CREATE = PolymorphicProxySerializer(
    component_name="RunCreate",
    serializers=[RunOnSnapshotSerializer, RunOnDatasetSerializer],
    resource_type_field_name=None,
)


class MetricSerializer(serializers.ModelSerializer):
    class Meta:
        model = RunMetric
        fields = ["step", "epoch", "loss", "val_loss", "learning_rate", "grad_norm", "tokens_per_s", "reward_margin",
                  "reward_accuracy", "logp_chosen", "logp_rejected", "created_at"]  # fmt: skip


class LogSerializer(serializers.ModelSerializer):
    class Meta:
        model = RunLog
        fields = ["id", "line", "created_at"]


class EvalItemSerializer(serializers.ModelSerializer):
    class Meta:
        model = EvalItem
        fields = ["id", "example", "prompt", "reference", "rejected", "blocked", "before_output", "after_output",
                  "before_ok", "after_ok", "before_prefers_chosen", "after_prefers_chosen"]  # fmt: skip


class AttemptSerializer(serializers.Serializer):
    """One claim of the run by a worker (or an out-of-memory retry within one), and how it ended."""

    number = serializers.IntegerField()
    worker = serializers.CharField()
    started_at = serializers.DateTimeField()
    from_step = serializers.IntegerField()
    ended_at = serializers.DateTimeField(required=False)
    to_step = serializers.IntegerField(required=False)
    outcome = serializers.ChoiceField(
        ["succeeded", "failed", "cancelled", "worker lost", "out of memory"],
        required=False,
        help_text="absent while running",
    )
    reason = serializers.CharField(required=False)


class RunSerializer(serializers.ModelSerializer):
    dataset = serializers.IntegerField(source="snapshot.dataset_id", read_only=True)
    attempts = AttemptSerializer(many=True, read_only=True)
    dataset_name = serializers.CharField(source="snapshot.dataset.name", read_only=True)
    created_by = serializers.SlugRelatedField(slug_field="username", read_only=True, allow_null=True)
    progress = serializers.FloatField(read_only=True)
    latest_metrics = serializers.SerializerMethodField()
    key_metric = serializers.SerializerMethodField()
    artifact_url = serializers.SerializerMethodField()

    class Meta:
        model = TrainingRun
        fields = [
            "id", "snapshot", "dataset", "dataset_name", "base_model", "method", "objective", "init_run", "hyperparameters",
            "status", "phase", "step",
            "total_steps", "progress", "eta_seconds", "cancel_requested", "created_by", "queued_at", "started_at", "first_step_at",
            "finished_at", "heartbeat_at", "device", "error", "traceback_tail", "summary", "evaluation", "latest_metrics",
            "key_metric", "artifact_url", "attempt", "max_attempts", "attempts", "micro_batch",
        ]  # fmt: skip

    def get_latest_metrics(self, run: TrainingRun) -> dict | None:
        metric = latest_metric(run)
        return MetricSerializer(metric).data if metric else None

    def get_key_metric(self, run: TrainingRun) -> dict | None:
        found = key_metric(run)
        return {"name": found[0], "value": found[1]} if found else None

    def get_artifact_url(self, run: TrainingRun) -> str | None:
        return reverse("api-run-artifact", args=[run.pk]) if run.artifact else None


class RunDetailSerializer(RunSerializer):
    eval_items = EvalItemSerializer(many=True, read_only=True)

    class Meta(RunSerializer.Meta):
        fields = [*RunSerializer.Meta.fields, "eval_items"]


class GenerateSerializer(JsonTypes, serializers.Serializer):
    prompt = serializers.CharField(max_length=8000)
    max_new_tokens = serializers.IntegerField(default=128, min_value=1, max_value=512)


class PlaygroundQueuedSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    status = serializers.ChoiceField(choices=PlaygroundStatus.choices)
    url = serializers.CharField(help_text="Poll this until status is succeeded or failed.")


class PlaygroundSerializer(serializers.ModelSerializer):
    """A playground request; the answers once it succeeded, the error once it failed (null before)."""

    base = serializers.SerializerMethodField()
    fine_tuned = serializers.SerializerMethodField()
    error = serializers.SerializerMethodField()

    class Meta:
        model = PlaygroundRequest
        fields = ["id", "run", "status", "prompt", "max_new_tokens", "base", "fine_tuned", "error", "created_at",
                  "started_at", "finished_at"]  # fmt: skip
        read_only_fields = fields

    def get_base(self, request: PlaygroundRequest) -> str | None:
        return request.base_output if request.status == PlaygroundStatus.SUCCEEDED else None

    def get_fine_tuned(self, request: PlaygroundRequest) -> str | None:
        return request.fine_tuned_output if request.status == PlaygroundStatus.SUCCEEDED else None

    def get_error(self, request: PlaygroundRequest) -> str | None:
        return request.error if request.status == PlaygroundStatus.FAILED else None


# --- preflight


class PreflightQuerySerializer(serializers.Serializer):
    limit = serializers.IntegerField(default=1000, min_value=1, max_value=10_000, help_text="Pairs listed.")
    offset = serializers.IntegerField(default=0, min_value=0, max_value=ID_MAX, help_text="Pairs skipped.")
    order = serializers.ChoiceField(
        choices=["id", "longest"], default="id", help_text="id: snapshot order; longest: most tokens first."
    )


class PreflightCountsSerializer(serializers.Serializer):
    pairs = serializers.IntegerField()
    tokens = serializers.IntegerField(help_text="After truncation: trained_tokens + masked_tokens.")
    full_tokens = serializers.IntegerField(help_text="Before truncation.")
    trained_tokens = serializers.IntegerField(
        help_text="Tokens with a loss: the response and each earlier assistant turn without weight 0, each with its "
        "end-of-turn token."
    )
    masked_tokens = serializers.IntegerField(
        help_text="Tokens without one: system prompt, the other earlier turns, prompt, template."
    )
    truncated = serializers.IntegerField(help_text="Pairs longer than max_seq_len.")


class PreflightTotalsSerializer(PreflightCountsSerializer):
    steps = serializers.IntegerField(help_text="Optimizer steps of the whole run.")
    steps_per_epoch = serializers.IntegerField()
    epochs = serializers.IntegerField()


class PreflightSplitsSerializer(serializers.Serializer):
    train = PreflightCountsSerializer()
    validation = PreflightCountsSerializer()


class PreflightPairSerializer(serializers.Serializer):
    example = serializers.IntegerField(allow_null=True, help_text="The pair's id in its dataset.")
    split = serializers.CharField(allow_null=True)
    tokens = serializers.IntegerField(help_text="After truncation: trained_tokens + masked_tokens.")
    full_tokens = serializers.IntegerField(help_text="Before truncation.")
    trained_tokens = serializers.IntegerField()
    masked_tokens = serializers.IntegerField()
    truncated = serializers.BooleanField(help_text="Longer than max_seq_len: cut to it.")


class PreflightEstimateSerializer(serializers.Serializer):
    seconds = serializers.FloatField(help_text="Training steps only; loading and evaluating the model come on top.")
    basis = serializers.ChoiceField(choices=["measured", "default"])
    runs = serializers.IntegerField(help_text="Earlier runs the speed was measured on (0 for the default).")
    tokens_per_s = serializers.FloatField()
    tokens = serializers.IntegerField(help_text="Tokens fed forward in training, every epoch together.")


class PreflightWarningSerializer(serializers.Serializer):
    code = serializers.CharField()
    message = serializers.CharField()


class PreflightSerializer(serializers.Serializer):
    dataset = serializers.IntegerField()
    snapshot = serializers.IntegerField(allow_null=True)
    base_model = serializers.CharField()
    method = serializers.CharField()
    objective = serializers.CharField()
    max_seq_len = serializers.IntegerField()
    validation_fraction = serializers.FloatField()
    totals = PreflightTotalsSerializer()
    splits = PreflightSplitsSerializer()
    estimate = PreflightEstimateSerializer()
    warnings = PreflightWarningSerializer(many=True)
    sampled = serializers.BooleanField(help_text="True when the pairs were more than can be tokenized in a request: "
                                       "`pairs` lists a seeded sample and the token totals are scaled up from it.")  # fmt: skip
    count = serializers.IntegerField(help_text="Pairs in `pairs` over every page.")
    offset = serializers.IntegerField()
    limit = serializers.IntegerField()
    pairs = PreflightPairSerializer(many=True)


class PairTokensQuerySerializer(serializers.Serializer):
    example = serializers.IntegerField(min_value=1, max_value=ID_MAX)
    snapshot = serializers.IntegerField(
        required=False, min_value=1, max_value=ID_MAX, help_text="The pair as frozen in this snapshot."
    )
    base_model = serializers.ChoiceField(
        choices=[], required=False, allow_blank=True, default="", help_text="Empty: the workspace's default."
    )
    max_seq_len = serializers.IntegerField(
        required=False, min_value=MIN_SEQ_LEN, max_value=MAX_SEQ_LEN, help_text="Left out: the base model's default."
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["base_model"].choices = list(settings.BASE_MODELS)


class TokenPieceSerializer(serializers.Serializer):
    text = serializers.CharField()
    kind = serializers.ChoiceField(choices=["trained", "masked", "cut"])


class PairTokensSerializer(PreflightPairSerializer):
    base_model = serializers.CharField()
    max_seq_len = serializers.IntegerField()
    pieces = TokenPieceSerializer(many=True, help_text="Every token in order; joined, the rendered conversation.")


# --- run comparison and snapshot diff


class CompareRunSerializer(serializers.ModelSerializer):
    dataset = serializers.IntegerField(source="snapshot.dataset_id", read_only=True)
    dataset_name = serializers.CharField(source="snapshot.dataset.name", read_only=True)
    snapshot_number = serializers.IntegerField(source="snapshot.number", read_only=True)
    eval_hash = serializers.SerializerMethodField(help_text="The snapshot's evaluation set (null without one).")
    evaluation_source = serializers.SerializerMethodField(help_text='"eval_set", "validation", or null before scoring.')

    class Meta:
        model = TrainingRun
        fields = ["id", "dataset", "dataset_name", "snapshot", "snapshot_number", "base_model", "method", "objective",
                  "init_run", "status", "created_at", "finished_at", "eval_hash", "evaluation_source"]  # fmt: skip

    def get_eval_hash(self, run: TrainingRun) -> str | None:
        return run.snapshot.eval_hash or None

    def get_evaluation_source(self, run: TrainingRun) -> str | None:
        return (run.evaluation.get("source") or "validation") if run.evaluation else None


class CompareMetricSerializer(serializers.Serializer):
    name = serializers.CharField()
    label = serializers.CharField()
    values = serializers.ListField(child=serializers.FloatField(allow_null=True), help_text="One per run, in order.")
    better = serializers.ChoiceField(choices=["higher", "lower"])


class ComparePromptSerializer(serializers.Serializer):
    prompt = serializers.CharField()
    expected = serializers.CharField(help_text="The pair's response (the first run's).")
    blocked = serializers.BooleanField(allow_null=True, help_text="Guardrail datasets: whether it should be refused.")
    outputs = serializers.ListField(child=serializers.CharField(), help_text="Each run's answer after training.")
    passed = serializers.ListField(child=serializers.BooleanField(allow_null=True))
    example = serializers.IntegerField(allow_null=True, help_text="The pair it was scored on (null if deleted).")
    flip = serializers.ChoiceField(choices=["fixed", "broken"], allow_null=True, help_text="First run to last.")


class FlipCountSerializer(serializers.Serializer):
    fixed = serializers.IntegerField(help_text="Failed in the first run, passed in the last.")
    broken = serializers.IntegerField(help_text="Passed in the first run, failed in the last.")


class ComparisonSerializer(serializers.Serializer):
    runs = CompareRunSerializer(many=True)
    same_eval_set = serializers.BooleanField(help_text="Every run was scored on the same evaluation set (eval_hash).")
    unshared = serializers.IntegerField(help_text="Prompts some runs were scored on and others not: left out.")
    metrics = CompareMetricSerializer(many=True)
    prompts = ComparePromptSerializer(many=True)
    flips = FlipCountSerializer()


class SnapshotRowSerializer(serializers.Serializer):
    ref = serializers.IntegerField(allow_null=True, help_text="The pair it was frozen from.")
    split = serializers.CharField()
    system = serializers.CharField(allow_blank=True)
    prompt = serializers.CharField(allow_blank=True)
    response = serializers.CharField(allow_blank=True)
    history = serializers.ListField(child=serializers.DictField())
    tags = serializers.ListField(child=serializers.CharField())


class ChangedRowSerializer(serializers.Serializer):
    ref = serializers.IntegerField(allow_null=True)
    changed_fields = serializers.ListField(child=serializers.CharField(), help_text="The fields that differ.")
    before = SnapshotRowSerializer()
    after = SnapshotRowSerializer()


class ChangeCountSerializer(serializers.Serializer):
    added = serializers.IntegerField()
    removed = serializers.IntegerField()
    changed = serializers.IntegerField()
    unchanged = serializers.IntegerField()


class DiffCountSerializer(ChangeCountSerializer):
    eval = ChangeCountSerializer(help_text="The same counts for the evaluation pairs (not listed).")


class SnapshotDiffSerializer(serializers.Serializer):
    before = serializers.IntegerField()
    after = serializers.IntegerField()
    added = SnapshotRowSerializer(many=True)
    removed = SnapshotRowSerializer(many=True)
    changed = ChangedRowSerializer(many=True)
    counts = DiffCountSerializer(help_text="Training pairs (train and validation rows); `eval`: the evaluation pairs.")
    truncated = serializers.BooleanField(help_text="More pairs changed than are listed (1,000 per list).")


class SendFailuresSerializer(JsonTypes, serializers.Serializer):
    items = serializers.ListField(
        child=serializers.IntegerField(min_value=1, max_value=ID_MAX), required=False, max_length=MAX_ITEMS,
        help_text="Evaluated prompts of the run (eval_items[].id) that failed; left out: every failed one.",
    )  # fmt: skip
    dataset = VisibleRelatedField(
        queryset=Dataset.objects.all(), visible=dataset_list, noun="dataset", required=False,
        help_text="Where the drafts go (a dataset of the run's workspace); left out: the run's dataset.",
    )  # fmt: skip
    paraphrase = serializers.BooleanField(
        default=True,
        help_text="Reword each prompt with a generator on a worker (202 with a job), or false: use it as is (200).",
    )
    generator = serializers.ChoiceField(
        choices=[],
        required=False,
        allow_null=True,
        error_messages=UNKNOWN_GENERATOR,
        help_text="A backend from /api/generators/?workspace=<id> (configured or fine-tuned); left out: the default.",
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        workspace = self.context.get("workspace")
        self.fields["generator"].choices = [key for key, _ in generator_choices(workspace=workspace)]


class SendFailuresResultSerializer(serializers.Serializer):
    created = serializers.IntegerField()
    skipped = serializers.IntegerField(help_text="Prompts already sent to that dataset.")
    not_reworded = serializers.IntegerField(help_text="Prompts the model gave no usable rewording for (no draft).")
    examples = serializers.ListField(child=serializers.IntegerField(), help_text="The new drafts' ids.")
