"""Fine-tuning jobs of /v1/fine_tuning/jobs: each is an Instructory run on a dataset made from its files.

Creating a job, in one transaction: a dataset of the workspace named after the job, the training file's
conversations imported as approved pairs (source `openai-file:<id>`) into its training set and the validation
file's into its evaluation set, a snapshot (its seeded validation split gives the validation loss), and a run
through training_app's services, queued for a worker like any run. The file was checked on upload, so this is
an import; a job is never seen `validating_files`. Nothing is left behind when any step refuses. A file whose
conversations carry guardrail tags (`"tags": ["blocked:<topic>"]` or `["allowed:<topic>"]`, as the openai
importer reads and exporter writes them) makes a guardrail dataset, so the run is evaluated as a guardrail run.
"""

import csv
import io
import secrets

from django.core.exceptions import ObjectDoesNotExist, ValidationError
from django.core.files.base import ContentFile
from django.db import transaction
from django.db.models import QuerySet

from datasets_app.curation.services import dataset_create, dataset_update
from datasets_app.errors import Conflict
from datasets_app.imports.services import ImportRejected, dataset_import
from datasets_app.models import Dataset, DatasetKind, ExampleSplit, ExampleStatus, Role, Workspace
from openai_app import catalog
from openai_app.files import file_get, new_file_id
from openai_app.job_request import JobRequest
from openai_app.keys import KeyAccess
from openai_app.models import ApiFile, FileFormat, FilePurpose, FineTuningJob
from training_app.models import RunMetric, RunStatus, TrainingRun
from training_app.services import run_cancel, run_create
from training_app.snapshots import snapshot_create

RESULT_COLUMNS = ("step", "epoch", "train_loss", "valid_loss", "learning_rate")


# --- reads


def job_list(*, workspace: Workspace) -> QuerySet[FineTuningJob]:
    """The workspace's jobs, newest first, with what their objects show."""
    jobs = FineTuningJob.objects.filter(workspace=workspace).select_related("run", "workspace", "result_file")
    return jobs.order_by("-run_id")


def job_get(*, workspace: Workspace, job_id: str) -> FineTuningJob | None:
    run_id = catalog.job_run_id(job_id)
    return job_list(workspace=workspace).filter(run_id=run_id).first() if run_id is not None else None


def job_of(run: TrainingRun) -> FineTuningJob | None:
    try:
        return run.fine_tuning_job  # type: ignore[attr-defined]
    except ObjectDoesNotExist:
        return None


# --- writes


@transaction.atomic
def job_create(*, access: KeyAccess, request: JobRequest) -> FineTuningJob:
    """Start a fine-tuning job (lead keys). Raises ValidationError naming the parameter at fault (`training_file`,
    `validation_file`) with the lines at fault; nothing is saved then."""
    access.require(Role.LEAD)
    training = _chat_file(access.workspace, request.training_file, "training_file")
    validation = (
        _chat_file(access.workspace, request.validation_file, "validation_file") if request.validation_file else None
    )
    dataset = dataset_create(
        workspace=access.workspace, user=access.user, name=f"fine-tuning job {secrets.token_hex(6)}",
        description=f"Made by a fine-tuning job of the OpenAI-compatible API from {_files(training, validation)}.",
    )  # fmt: skip
    _import(dataset, access, training, ExampleSplit.TRAIN, "training_file")
    if validation is not None:
        _import(dataset, access, validation, ExampleSplit.EVAL, "validation_file")
    if _has_blocked_prompts(dataset):
        # A guardrail file: the snapshot keeps blocked prompts in both splits and the run scores refusals.
        dataset = dataset_update(dataset=dataset, user=access.user, kind=DatasetKind.GUARDRAIL)
    try:
        snapshot = snapshot_create(dataset=dataset, user=access.user, seed=request.seed)
    except Conflict as refused:
        found = " ".join(refused.messages)
        raise ValidationError(
            {"training_file": [f"{training.public_id} cannot be trained on: the dataset made from it {found}"]}
        ) from refused
    run = run_create(
        user=access.user, snapshot=snapshot, base_model=request.model, hyperparameters=request.hyperparameters
    )
    dataset_update(dataset=dataset, user=access.user, name=f"ftjob-{run.pk} · {training.filename}"[:200])
    return FineTuningJob.objects.create(
        run=run, workspace=access.workspace, created_by=access.user, api_key=access.key,
        training_file=training.public_id, validation_file=validation.public_id if validation else "",
        suffix=request.suffix, seed=request.seed, learning_rate_multiplier=request.learning_rate_multiplier,
        metadata=request.metadata,
    )  # fmt: skip


def _chat_file(workspace: Workspace, file_id: str, param: str) -> ApiFile:
    found = file_get(workspace=workspace, file_id=file_id)
    if found is None:
        raise ValidationError({param: [f"invalid {param}: {file_id[:60]}"]})
    if found.purpose != FilePurpose.FINE_TUNE:
        raise ValidationError({param: [f"{file_id} has purpose {found.purpose}; fine-tuning needs a fine-tune file"]})
    if found.format != FileFormat.CHAT:
        raise ValidationError(
            {param: [f"{file_id} is a {found.format} file; supervised fine-tuning needs a chat file (messages)"]}
        )
    return found


def _has_blocked_prompts(dataset: Dataset) -> bool:
    """Whether a conversation of the files is tagged `blocked:<topic>`, as a guardrail dataset's blocked prompts are."""
    tag_lists = dataset.examples.exclude(tags=[]).values_list("tags", flat=True).iterator(chunk_size=2000)
    return any(tag.startswith("blocked:") for tags in tag_lists for tag in tags)


def _files(training: ApiFile, validation: ApiFile | None) -> str:
    named = f"{training.filename} ({training.public_id})"
    return named + (f" and {validation.filename} ({validation.public_id}) for evaluation" if validation else "")


def _import(dataset: Dataset, access: KeyAccess, file: ApiFile, split: str, param: str) -> None:
    try:
        with file.file.open("rb") as stream:
            dataset_import(
                dataset=dataset, user=access.user, stream=stream, filename=file.filename, fmt="openai",
                on_duplicate="keep", status=ExampleStatus.APPROVED, split=split, source=f"openai-file:{file.public_id}",
            )  # fmt: skip
    except ImportRejected as rejected:
        shown = "; ".join(_problem(problem) for problem in rejected.problems[:20])
        raise ValidationError({param: [f"{file.public_id} cannot be trained on: {shown}"]}) from rejected


def _problem(problem: dict) -> str:
    where = next((f"{unit} {problem[unit]}" for unit in ("line", "record") if unit in problem), "file")
    return f"{where}: {problem.get('field') or ''} {problem['message']}".replace(":  ", ": ")


def job_cancel(*, access: KeyAccess, job: FineTuningJob) -> FineTuningJob:
    """Cancel a job (lead keys): a queued one ends now, a running one within seconds; a finished one stays."""
    access.require(Role.LEAD)
    job.run = run_cancel(run=job.run, user=access.user)
    return job


def results_file_write(*, run_id: int) -> ApiFile | None:
    """Write a succeeded job's CSV of step metrics (step, epoch, train_loss, valid_loss, learning_rate) to storage
    as a `fine-tune-results` file, once; None for a run that is not a job's."""
    job = FineTuningJob.objects.select_related("run").filter(run_id=run_id).first()
    if job is None or job.result_file_id is not None or job.run.status != RunStatus.SUCCEEDED:
        return None
    content = results_csv(job.run).encode()
    row = ApiFile(
        public_id=new_file_id(), workspace_id=job.workspace_id, created_by_id=job.created_by_id,
        api_key_id=job.api_key_id, filename=f"step_metrics_ftjob-{run_id}.csv", purpose=FilePurpose.FINE_TUNE_RESULTS,
        format=FileFormat.CSV, size=len(content), examples=content.count(b"\n") - 1,
    )  # fmt: skip
    row.file.save(row.filename, ContentFile(content), save=False)
    try:
        with transaction.atomic():
            row.save()
            FineTuningJob.objects.filter(pk=job.pk, result_file__isnull=True).update(result_file=row)
    except BaseException:
        row.file.storage.delete(row.file.name)
        raise
    return row


def results_csv(run: TrainingRun) -> str:
    """One line a training step; valid_loss on the steps that ended an epoch (the snapshot's validation split)."""
    steps: dict[int, dict] = {}
    for metric in RunMetric.objects.filter(run=run).order_by("step", "id"):
        line = steps.setdefault(metric.step, {"step": metric.step})
        line["epoch"] = round(metric.epoch, 4)
        if metric.loss is not None:
            line["train_loss"], line["learning_rate"] = metric.loss, metric.learning_rate
        if metric.val_loss is not None:
            line["valid_loss"] = metric.val_loss
    out = io.StringIO()
    writer = csv.DictWriter(out, RESULT_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(steps.values())
    return out.getvalue()


def on_run_finished(sender: type, *, run_id: int, status: str, **kwargs: object) -> None:
    """training_app's run_finished: a succeeded job gets its results file."""
    if status == RunStatus.SUCCEEDED:
        results_file_write(run_id=run_id)
