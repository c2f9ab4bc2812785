"""Every write to training runs and playground requests: create, cancel, sweep; running them lives in execution.py."""

from datetime import timedelta

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from datasets_app.curation.selectors import role_require
from datasets_app.errors import Conflict
from datasets_app.jobs.outbox import dispatch_due, dispatch_on_commit
from datasets_app.models import Dataset, DatasetKind, Role, Workspace
from training_app.checkpoints import attempt_end, attempts_text, checkpoints_forget
from training_app.exports import merged_export_forget
from training_app.judging.services import AB_TASK
from training_app.ml.config import (
    METHODS,
    TrainConfig,
    is_adapter_method,
    is_quantized_method,
    objective_defaults,
    qlora_problem,
    validate_config,
)
from training_app.models import (
    PREFERENCE_OBJECTIVES,
    ABItem,
    DatasetVersion,
    Objective,
    PlaygroundRequest,
    PlaygroundStatus,
    RunLog,
    RunStatus,
    TrainingRun,
)
from training_app.snapshots import snapshot_create

# The tasks that execute the rows, by name (training_app/tasks.py); the outbox sends them.
RUN_TASK = "training_app.tasks.run_training_task"
PLAYGROUND_TASK = "training_app.tasks.playground_task"


def base_model_names() -> list[str]:
    return list(settings.BASE_MODELS)


def default_hyperparameters(objective: str = Objective.SFT) -> dict:
    """Every training setting of a run of `objective` left to its default: the project's, overlaid with the
    objective's own (preference tuning learns from fewer, contrasting pairs: lower rate, fewer epochs). Only
    preference objectives have a beta."""
    defaults = TrainConfig().to_dict()
    if objective in Objective.values:
        defaults.update(objective_defaults(objective))
    for name in ("method", "objective"):
        defaults.pop(name, None)
    if objective not in PREFERENCE_OBJECTIVES:
        defaults.pop("beta", None)
    return defaults


def _check(base_model: str, method: str, objective: str, hyperparameters: dict) -> tuple[dict, dict[str, str]]:
    """The complete settings and every problem with them, by field."""
    problems = {}
    if base_model not in settings.BASE_MODELS:
        problems["base_model"] = f"unknown base model {base_model!r}; expected one of {', '.join(settings.BASE_MODELS)}"
    if method not in METHODS:
        problems["method"] = f"must be one of {', '.join(METHODS)}"
    elif (problem := qlora_problem(method)) is not None:
        problems["method"] = problem
    if objective not in Objective.values:
        problems["objective"] = f"must be one of {', '.join(Objective.values)}"
    for name in ("method", "objective"):
        if name in hyperparameters:
            problems[f"hyperparameters.{name}"] = f"is not a training setting: set {name} beside hyperparameters"
    if "beta" in hyperparameters and objective not in PREFERENCE_OBJECTIVES:
        problems["hyperparameters.beta"] = "only preference objectives (dpo, orpo) have a beta"
    config = {**default_hyperparameters(objective), **hyperparameters, "method": method}
    if objective in Objective.values:
        config["objective"] = objective
    for field, message in validate_config(config):
        problems.setdefault(f"hyperparameters.{field}" if field not in ("method", "objective") else field, message)
    config.pop("method")
    config.pop("objective", None)
    return config, problems


def _objective_problem(objective: str, kind: str, dataset_name: str) -> str | None:
    """Preference objectives train on chosen and rejected answers, supervised training on single answers."""
    if objective in PREFERENCE_OBJECTIVES and kind != DatasetKind.PREFERENCE:
        return (
            f"{objective} learns from chosen and rejected answers: it needs a snapshot of a preference dataset, "
            f"and {dataset_name} is a {kind} dataset (use sft, or a preference dataset)"
        )
    if objective == Objective.SFT and kind == DatasetKind.PREFERENCE:
        return (
            f"{dataset_name} is a preference dataset (chosen and rejected answers): train it with dpo or orpo, "
            "or supervised on a dataset of single answers"
        )
    return None


def _init_run_problem(init_run: TrainingRun, *, workspace: Workspace, base_model: str, method: str) -> str | None:
    """A run starts from another only when that one's trained adapter can be merged under its new one."""
    if init_run.snapshot.dataset.workspace_id != workspace.pk:
        return f"run {init_run.pk} belongs to another workspace; start from a run of {workspace.name}"
    if init_run.status != RunStatus.SUCCEEDED:
        return f"run {init_run.pk} has not succeeded (it is {init_run.status}): only a trained model can be built on"
    if not is_adapter_method(init_run.method):
        return f"run {init_run.pk} is a full fine-tune; a run can start only from a LoRA run (its adapter is merged)"
    if not init_run.artifact:
        return f"run {init_run.pk} has no trained model any more (it was deleted)"
    if init_run.base_model != base_model:
        return f"run {init_run.pk} was trained on {init_run.base_model}, this run uses {base_model}: they must match"
    if is_quantized_method(method):
        return "qlora cannot start from a run (an adapter cannot be merged into a 4-bit base): use method lora"
    if method != "lora":
        return "starting from a run needs method lora (a new adapter over the run's merged one)"
    return None


def run_settings(
    *,
    user: AbstractBaseUser,
    snapshot: DatasetVersion | None = None,
    dataset: Dataset | None = None,
    base_model: str = "",
    method: str = "lora",
    objective: str = Objective.SFT,
    init_run: TrainingRun | None = None,
    hyperparameters: dict | None = None,
) -> tuple[str, dict]:
    """What run_create checks before it saves anything (leads only): the base model a run would use and its
    complete hyperparameters (the objective's defaults for those not given). Raises ValidationError naming each
    problem, or NotAllowed."""
    if snapshot is None and dataset is None:
        raise ValidationError({"snapshot": "give a snapshot or a dataset"})
    if snapshot is not None and dataset is not None:
        both = "give a snapshot or a dataset, not both"
        raise ValidationError({"snapshot": both, "dataset": both})
    source = snapshot.dataset if snapshot is not None else dataset
    assert source is not None
    workspace = source.workspace
    role_require(user=user, workspace=workspace, role=Role.LEAD)
    base_model = base_model or workspace.default_base_model or settings.DEFAULT_BASE_MODEL
    config, problems = _check(base_model, method, objective, hyperparameters or {})
    kind = snapshot.kind if snapshot is not None else source.kind
    if (problem := _objective_problem(objective, kind, source.name)) is not None:
        problems.setdefault("objective", problem)
    if init_run is not None:
        problem = _init_run_problem(init_run, workspace=workspace, base_model=base_model, method=method)
        if problem is not None:
            problems["init_run"] = problem
    if problems:
        raise ValidationError(problems)
    return base_model, config


@transaction.atomic
def run_create(
    *,
    user: AbstractBaseUser,
    snapshot: DatasetVersion | None = None,
    dataset: Dataset | None = None,
    base_model: str = "",
    method: str = "lora",
    objective: str = Objective.SFT,
    init_run: TrainingRun | None = None,
    hyperparameters: dict | None = None,
    validation_fraction: float = 0.1,
) -> TrainingRun:
    """Queue a fine-tuning run on a snapshot (a fresh one of `dataset` when no snapshot is given); leads only.
    With `init_run` it trains a new adapter over that run's model (merged), e.g. preferences after supervised."""
    base_model, config = run_settings(
        user=user, snapshot=snapshot, dataset=dataset, base_model=base_model, method=method, objective=objective,
        init_run=init_run, hyperparameters=hyperparameters,
    )  # fmt: skip
    if snapshot is None:
        snapshot = snapshot_create(dataset=dataset, user=user, validation_fraction=validation_fraction)  # type: ignore[arg-type]
    run = TrainingRun.objects.create(
        snapshot=snapshot, base_model=base_model, method=method, objective=objective, init_run=init_run,
        hyperparameters=config, created_by=user, max_attempts=settings.RUN_MAX_ATTEMPTS,
    )  # fmt: skip
    dispatch_on_commit(run, RUN_TASK)  # with the broker down, run_dispatch sends it once the broker is back
    return run


@transaction.atomic
def run_cancel(*, run: TrainingRun, user: AbstractBaseUser) -> TrainingRun:
    """Ask a run to stop; a queued one stops now, a running one at its next step (checked every ~2 s)."""
    locked = TrainingRun.objects.select_for_update().select_related("snapshot__dataset__workspace").get(pk=run.pk)
    role_require(user=user, workspace=locked.snapshot.dataset.workspace, role=Role.LEAD)
    if locked.finished:
        return locked
    locked.cancel_requested = True
    if locked.status == RunStatus.QUEUED:
        locked.status, locked.finished_at = RunStatus.CANCELLED, timezone.now()
        checkpoints_forget(locked)  # of an earlier attempt
    locked.save(update_fields=["cancel_requested", "status", "finished_at", "checkpoints", "updated_at"])
    return locked


@transaction.atomic
def run_model_delete(*, run: TrainingRun, user: AbstractBaseUser) -> TrainingRun:
    """Delete the model a succeeded run trained (leads): its artifact leaves storage once this commits. The run,
    its metrics and its evaluation stay; the artifact download answers 404 from then on."""
    locked = TrainingRun.objects.select_for_update().select_related("snapshot__dataset__workspace").get(pk=run.pk)
    role_require(user=user, workspace=locked.snapshot.dataset.workspace, role=Role.LEAD)
    if locked.status != RunStatus.SUCCEEDED or not locked.artifact:
        raise Conflict({"run": f"run {locked.pk} has no trained model to delete"})
    storage, name = locked.artifact.storage, locked.artifact.name
    locked.artifact = ""
    locked.save(update_fields=["artifact", "updated_at"])
    merged_export_forget(locked)
    # The row stops naming the file first: a failed delete leaves a stray file, never a run pointing at nothing.
    transaction.on_commit(lambda: storage.delete(name))
    return locked


def run_sweep(*, timeout: timedelta | None = None) -> int:
    """Take running runs from workers that stopped sending heartbeats (killed, out of memory, machine gone): each
    is queued again, to resume from its last checkpoint on any worker, until it has had max_attempts; then it
    fails, saying what each attempt did. Returns how many runs were taken.

    A running run's worker beats every few seconds; past RUN_HEARTBEAT_TIMEOUT_S (or `timeout`) it is called dead.
    """
    timeout = timeout or timedelta(seconds=settings.RUN_HEARTBEAT_TIMEOUT_S)
    stale = TrainingRun.objects.filter(status=RunStatus.RUNNING, heartbeat_at__lt=timezone.now() - timeout)
    return sum(_take_from_dead_worker(run_id, timeout) for run_id in stale.values_list("pk", flat=True))


@transaction.atomic
def _take_from_dead_worker(run_id: int, timeout: timedelta) -> bool:
    now = timezone.now()
    run = TrainingRun.objects.select_for_update().get(pk=run_id)
    if run.status != RunStatus.RUNNING or run.heartbeat_at >= now - timeout:
        return False  # it ended, or beat, meanwhile
    worker = run.worker or "its worker"
    reason = f"{worker} stopped responding (no heartbeat for {timeout.total_seconds():.0f} s)"
    attempt_end(run, outcome="worker lost", reason=reason)
    run.phase, run.updated_at = "", now
    if run.cancel_requested:
        run.status, run.finished_at = RunStatus.CANCELLED, now
        checkpoints_forget(run)
    elif run.attempt < run.max_attempts:
        run.status, run.worker, run.dispatched_at, run.dispatch_count = RunStatus.QUEUED, "", None, 0
        run.phase = f"queued again for attempt {run.attempt + 1} of {run.max_attempts}"
        dispatch_on_commit(run, RUN_TASK)
    else:
        run.status, run.finished_at = RunStatus.FAILED, now
        run.error = (
            f"every one of its {run.max_attempts} attempts lost its worker (killed, out of memory, or its machine "
            f"went away): {attempts_text(run)}. Metrics so far are kept; start a new run to try again."
        )
        checkpoints_forget(run)
    run.save()
    RunLog.objects.create(run=run, line=f"attempt {run.attempt}: {reason}; the run is {run.status} now")
    return True


def playground_sweep(*, timeout: timedelta | None = None) -> int:
    """Fail playground requests generating for longer than PLAYGROUND_TIMEOUT_S: their worker died or hung."""
    timeout = timeout if timeout is not None else timedelta(seconds=settings.PLAYGROUND_TIMEOUT_S)
    now = timezone.now()
    stale = PlaygroundRequest.objects.filter(status=PlaygroundStatus.RUNNING, started_at__lt=now - timeout)
    return stale.update(
        status=PlaygroundStatus.FAILED,
        finished_at=now,
        updated_at=now,
        error=f"the worker answering this stopped (no answer after {int(timeout.total_seconds())} s): "
        "it was killed or its machine went away. Ask again.",
    )


@transaction.atomic
def playground_ask(
    *, run: TrainingRun, user: AbstractBaseUser, prompt: str, max_new_tokens: int = 128
) -> PlaygroundRequest:
    """Queue a prompt for the base and the fine-tuned model; a worker answers (models never load in the web)."""
    role_require(user=user, workspace=run.snapshot.dataset.workspace, role=Role.ANNOTATOR)
    if run.status != RunStatus.SUCCEEDED:
        raise Conflict({"run": "the playground needs a run that succeeded"})
    if not prompt.strip():
        raise ValidationError({"prompt": "may not be blank"})
    if not 1 <= max_new_tokens <= 512:
        raise ValidationError({"max_new_tokens": "must be between 1 and 512"})
    request = PlaygroundRequest.objects.create(run=run, user=user, prompt=prompt, max_new_tokens=max_new_tokens)
    dispatch_on_commit(request, PLAYGROUND_TASK)
    return request


def run_dispatch() -> int:
    """Periodic: send the tasks of queued runs, playground requests and typed judging prompts that never reached the
    broker, or were lost by it (the outbox); returns how many were sent. The claim takes a row once."""
    sent = dispatch_due(TrainingRun, RUN_TASK) + dispatch_due(PlaygroundRequest, PLAYGROUND_TASK)
    return sent + dispatch_due(ABItem, AB_TASK)
