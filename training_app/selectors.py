"""Reads of snapshots and runs, scoped to the user's workspaces."""

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import QuerySet
from django.shortcuts import get_object_or_404

from datasets_app.curation.selectors import dataset_list, workspace_list
from datasets_app.models import ROLE_RANK, Dataset, Role
from training_app.ml.config import ADAPTER_METHODS
from training_app.models import DatasetVersion, EvalItem, PlaygroundRequest, RunLog, RunMetric, RunStatus, TrainingRun

User = AbstractBaseUser | AnonymousUser


def snapshot_list(*, user: User) -> QuerySet[DatasetVersion]:
    return DatasetVersion.objects.filter(dataset__workspace__in=workspace_list(user=user)).select_related("dataset")


def snapshot_get(*, user: User, pk: int) -> DatasetVersion:
    return get_object_or_404(snapshot_list(user=user), pk=pk)


def run_list(*, user: User, dataset_id: int | None = None) -> QuerySet[TrainingRun]:
    runs = TrainingRun.objects.filter(snapshot__dataset__workspace__in=workspace_list(user=user))
    if dataset_id is not None:
        runs = runs.filter(snapshot__dataset_id=dataset_id)
    return runs.select_related("snapshot__dataset__workspace", "created_by")


def run_get(*, user: User, pk: int) -> TrainingRun:
    return get_object_or_404(run_list(user=user), pk=pk)


def latest_metric(run: TrainingRun) -> RunMetric | None:
    return run.metrics.filter(loss__isnull=False).order_by("-step", "-id").first()


def key_metric(run: TrainingRun) -> tuple[str, float | None] | None:
    """The number that says whether the run worked, for lists: the kind's task metric after training."""
    after = run.evaluation.get("after") or {}
    for name in ("refusal_rate", "valid_rate", "preference_accuracy", "exact_match", "val_loss"):
        if after.get(name) is not None:
            return name, after[name]
    return None


def playground_get(*, user: User, pk: int) -> PlaygroundRequest:
    visible = PlaygroundRequest.objects.filter(run__snapshot__dataset__workspace__in=workspace_list(user=user))
    return get_object_or_404(visible, pk=pk)


# --- for the HTML pages


def trainable_dataset_list(*, user: User) -> QuerySet[Dataset]:
    """Datasets the user may start runs on: those of workspaces where they are a lead (or above)."""
    if not user.is_authenticated:
        return Dataset.objects.none()
    roles = [role for role, rank in ROLE_RANK.items() if rank >= ROLE_RANK[Role.LEAD]]
    return dataset_list(user=user).filter(workspace__memberships__user=user, workspace__memberships__role__in=roles)


def run_metric_list(*, run: TrainingRun, after_id: int = 0) -> QuerySet[RunMetric]:
    """A run's metrics in the order they were written (training steps and epoch-end validation interleaved)."""
    return run.metrics.filter(id__gt=after_id).order_by("id")


def run_log_tail(*, run: TrainingRun, after_id: int = 0, limit: int = 50) -> list[RunLog]:
    """The last `limit` log lines (after `after_id`), oldest first."""
    return list(reversed(run.logs.filter(id__gt=after_id).order_by("-id")[:limit]))


def eval_item_list(*, run: TrainingRun) -> QuerySet[EvalItem]:
    return run.eval_items.order_by("id")


def playground_list(*, run: TrainingRun, user: User, limit: int = 5) -> QuerySet[PlaygroundRequest]:
    """The user's latest playground prompts on a run, newest first: answered, failed, or still queued or running."""
    if not user.is_authenticated:
        return PlaygroundRequest.objects.none()
    return run.playground_requests.filter(user=user).order_by("-created_at", "-id")[:limit]


def startable_run_list(*, user: User) -> QuerySet[TrainingRun]:
    """Runs a new run may start from (init_run), for the new-run form: succeeded LoRA or QLoRA runs with their model, in
    workspaces where the user may start runs."""
    runs = TrainingRun.objects.filter(
        snapshot__dataset__in=trainable_dataset_list(user=user), status=RunStatus.SUCCEEDED, method__in=ADAPTER_METHODS
    )
    return runs.exclude(artifact="").select_related("snapshot__dataset__workspace").order_by("-id")
