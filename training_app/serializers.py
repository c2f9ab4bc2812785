"""REST representations of snapshots, runs, metrics and the playground."""

from typing import Any

from django.conf import settings
from django.urls import reverse
from drf_spectacular.utils import PolymorphicProxySerializer, extend_schema_field
from rest_framework import serializers

from datasets_app.api.serializers import JsonTypes
from training_app.ml.config import settings_schema
from training_app.models import (
    DatasetVersion,
    EvalItem,
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

    class Meta:
        model = DatasetVersion
        fields = ["id", "dataset", "number", "kind", "content_hash", "seed", "validation_fraction", "n_train", "n_validation",
                  "created_at", "download_url"]  # fmt: skip

    def get_download_url(self, snapshot: DatasetVersion) -> str:
        return reverse("api-snapshot-download", args=[snapshot.pk])


class SnapshotCreateSerializer(JsonTypes, serializers.Serializer):
    validation_fraction = serializers.FloatField(default=0.1, min_value=0.01, max_value=0.9)
    seed = serializers.IntegerField(default=42, min_value=0, max_value=2**31 - 1)


@extend_schema_field(settings_schema())
class HyperparametersField(serializers.DictField):
    """Training settings over the defaults; validate_config checks each (the schema says what it accepts)."""


class RunSettingsSerializer(JsonTypes, serializers.Serializer):
    base_model = serializers.ChoiceField(
        choices=[], required=False, allow_blank=True, default="", help_text="Empty: the workspace's default."
    )
    method = serializers.ChoiceField(
        choices=TrainingRun._meta.get_field("method").choices, required=False, default="lora"
    )
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
        fields = ["step", "epoch", "loss", "val_loss", "learning_rate", "grad_norm", "tokens_per_s", "created_at"]


class LogSerializer(serializers.ModelSerializer):
    class Meta:
        model = RunLog
        fields = ["id", "line", "created_at"]


class EvalItemSerializer(serializers.ModelSerializer):
    class Meta:
        model = EvalItem
        fields = ["example", "prompt", "reference", "blocked", "before_output", "after_output", "before_ok", "after_ok"]


class RunSerializer(serializers.ModelSerializer):
    dataset = serializers.IntegerField(source="snapshot.dataset_id", read_only=True)
    dataset_name = serializers.CharField(source="snapshot.dataset.name", read_only=True)
    created_by = serializers.SlugRelatedField(slug_field="username", read_only=True, allow_null=True)
    progress = serializers.FloatField(read_only=True)
    latest_metrics = serializers.SerializerMethodField()
    key_metric = serializers.SerializerMethodField()
    artifact_url = serializers.SerializerMethodField()

    class Meta:
        model = TrainingRun
        fields = [
            "id", "snapshot", "dataset", "dataset_name", "base_model", "method", "hyperparameters", "status", "phase", "step",
            "total_steps", "progress", "eta_seconds", "cancel_requested", "created_by", "queued_at", "started_at", "first_step_at",
            "finished_at", "heartbeat_at", "device", "error", "traceback_tail", "summary", "evaluation", "latest_metrics",
            "key_metric", "artifact_url",
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
