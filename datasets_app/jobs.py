"""Background jobs on datasets: create the row, run it on a worker, sweep the ones whose worker died."""

import logging
from datetime import timedelta

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction
from django.utils import timezone
from django.utils.text import get_valid_filename

from datasets_app.importing import ImportOutcome, ImportRejected, dataset_import, resolve_format
from datasets_app.lint import LintReport, dataset_lint_refresh
from datasets_app.models import Dataset, ExampleStatus, Job, JobStatus, Role
from datasets_app.selectors import role_require

logger = logging.getLogger(__name__)
LINT_SUMMARY = ("checked", "pairs_with_problems", "counts")  # what a finished check keeps on its job row


@transaction.atomic
def import_job_create(
    *,
    dataset: Dataset,
    user: AbstractBaseUser,
    upload: UploadedFile,
    fmt: str | None,
    on_duplicate: str,
    status: str = ExampleStatus.DRAFT,
) -> Job:
    """Store the upload and queue its import; the worker that runs it may be on another machine."""
    role_require(
        user=user, workspace=dataset.workspace, role=Role.LEAD if status in ("approved", "rejected") else Role.ANNOTATOR
    )
    fmt = resolve_format(upload, fmt, upload.name or "")
    job = Job(
        kind=Job.Kind.IMPORT,
        dataset=dataset,
        created_by=user,
        params={"filename": upload.name, "format": fmt, "on_duplicate": on_duplicate, "status": status},
    )
    job.file.save(upload.name or "upload", upload, save=False)
    job.save()
    from datasets_app.tasks import import_job_task

    transaction.on_commit(lambda: import_job_task.delay(job.pk))
    return job


def job_claim(job_id: int) -> Job | None:
    """The queued job, now marked running; None when another delivery of the task already took it."""
    with transaction.atomic():
        job = Job.objects.select_for_update().filter(pk=job_id).first()
        if job is None or job.status != JobStatus.QUEUED:
            return None  # a redelivered task finds the job taken: nothing to do
        now = timezone.now()
        job.status, job.started_at, job.heartbeat_at, job.phase = JobStatus.RUNNING, now, now, "checking"
        job.save(update_fields=["status", "started_at", "heartbeat_at", "phase", "updated_at"])
        return job


def job_finish(job: Job, *, status: str, **fields: object) -> None:
    now = timezone.now()
    Job.objects.filter(pk=job.pk).update(status=status, finished_at=now, heartbeat_at=now, updated_at=now, **fields)


def job_progress(job: Job, phase: str, fraction: float) -> None:
    """Record progress; it doubles as the heartbeat the sweeper watches."""
    now = timezone.now()
    Job.objects.filter(pk=job.pk).update(phase=phase, progress=fraction, heartbeat_at=now, updated_at=now)


def import_job_run(*, job_id: int) -> None:
    """Run a queued import once; progress and the outcome go to the job row."""
    job = job_claim(job_id)
    if job is None:
        return

    params = job.params
    try:
        with job.file.open("rb") as stream:
            outcome = dataset_import(
                dataset=job.dataset, user=job.created_by, stream=stream, filename=params["filename"], fmt=params["format"],
                on_duplicate=params["on_duplicate"], status=params["status"],
                progress=lambda phase, fraction: job_progress(job, phase, fraction),
            )  # fmt: skip
    except ImportRejected as rejected:
        job_finish(job, status=JobStatus.FAILED, problems=rejected.problems, error=str(rejected), phase="rejected")
    except Exception as error:
        logger.exception("import job %s failed", job.pk)
        job_finish(job, status=JobStatus.FAILED, error=f"the import failed: {error}", phase="failed")
    else:
        job_finish(job, status=JobStatus.SUCCEEDED, result=outcome.as_dict(), progress=1.0, phase="done")
    finally:
        job.file.delete(save=False)


def job_sweep(*, now: object = None) -> int:
    """Fail running jobs whose worker stopped sending heartbeats; returns how many."""
    timeout = settings.JOB_HEARTBEAT_TIMEOUT_S
    cutoff = (now or timezone.now()) - timedelta(seconds=timeout)
    stale = Job.objects.filter(status=JobStatus.RUNNING, heartbeat_at__lt=cutoff)
    return stale.update(
        status=JobStatus.FAILED,
        error=f"the worker running this job stopped responding (no heartbeat for {timeout} s); start it again",
        finished_at=timezone.now(),
        updated_at=timezone.now(),
    )


def import_upload(
    *, dataset: Dataset, user: AbstractBaseUser, upload: UploadedFile, fmt: str | None, on_duplicate: str, status: str
) -> Job | ImportOutcome:
    """Import an uploaded file now, or queue it for a worker when it is over IMPORT_ASYNC_BYTES (a Job)."""
    upload.name = get_valid_filename(upload.name or "upload") or "upload"
    if upload.size > settings.IMPORT_ASYNC_BYTES:
        return import_job_create(
            dataset=dataset, user=user, upload=upload, fmt=fmt, on_duplicate=on_duplicate, status=status
        )
    return dataset_import(
        dataset=dataset,
        user=user,
        stream=upload,
        filename=upload.name,
        fmt=fmt,
        on_duplicate=on_duplicate,
        status=status,
    )


# --- checking a whole dataset


def dataset_lint_start(*, dataset: Dataset, user: AbstractBaseUser) -> LintReport | Job:
    """Check every pair of a dataset and store the problems: now, or as a job when it has over LINT_SYNC_MAX pairs.

    Either way any member may: both paths check the role themselves.
    """
    if dataset.examples.count() > settings.LINT_SYNC_MAX:
        return lint_job_create(dataset=dataset, user=user)
    return dataset_lint_refresh(dataset=dataset, user=user)


@transaction.atomic
def lint_job_create(*, dataset: Dataset, user: AbstractBaseUser) -> Job:
    """Queue a whole-dataset check; a check that is queued and not yet started is reused, not doubled."""
    role_require(user=user, workspace=dataset.workspace, role=Role.ANNOTATOR)
    Dataset.objects.select_for_update().filter(pk=dataset.pk).first()  # two requests at once queue one check
    waiting = Job.objects.filter(dataset=dataset, kind=Job.Kind.LINT, status=JobStatus.QUEUED).first()
    if waiting is not None:
        return waiting
    job = Job.objects.create(kind=Job.Kind.LINT, dataset=dataset, created_by=user)
    from datasets_app.tasks import lint_job_task

    transaction.on_commit(lambda: lint_job_task.delay(job.pk))
    return job


def lint_job_run(*, job_id: int) -> None:
    """Run a queued whole-dataset check once; progress and the counts go to the job row."""
    job = job_claim(job_id)
    if job is None:
        return
    try:
        report = dataset_lint_refresh(
            dataset=job.dataset,
            user=job.created_by,
            progress=lambda phase, fraction: job_progress(job, phase, fraction),
        )
    except Exception as error:
        logger.exception("lint job %s failed", job.pk)
        job_finish(job, status=JobStatus.FAILED, error=f"the check failed: {error}", phase="failed")
    else:
        summary = {key: value for key, value in report.as_dict(limit=0).items() if key in LINT_SUMMARY}
        job_finish(job, status=JobStatus.SUCCEEDED, result=summary, progress=1.0, phase="done")
