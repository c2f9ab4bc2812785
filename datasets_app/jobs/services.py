"""Background jobs of any kind: create (through the outbox), claim, progress (the heartbeat), finish, and the
sweeps: of jobs whose worker died, of queued jobs whose task never reached a worker, and of uploads no job needs.

Each feature creates and runs its own kind of job with these; nothing here knows a feature.
"""

import logging
from collections.abc import Iterator
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.files import File
from django.core.files.storage import Storage
from django.db import transaction
from django.utils import timezone

from datasets_app.jobs.heartbeat import Heartbeat
from datasets_app.jobs.outbox import dispatch_due, dispatch_on_commit
from datasets_app.models import Dataset, Job, JobStatus

logger = logging.getLogger(__name__)

UPLOADS = "jobs"  # the folder of Job.file in storage (its upload_to)
# A file there that no job names is an upload whose request died before its job was saved; younger ones may
# belong to a request still saving its job.
ORPHAN_UPLOAD_AGE = timedelta(hours=1)


@transaction.atomic
def job_create(
    *,
    kind: str,
    dataset: Dataset,
    user: AbstractBaseUser,
    task: str,
    params: dict | None = None,
    upload: File | None = None,
) -> Job:
    """A queued job whose task (a name) is sent when the transaction commits, and sent again until a worker starts it.

    With the broker down this still succeeds: the dispatcher (job_dispatch) sends the job once the broker is back.
    """
    job = Job(kind=kind, dataset=dataset, created_by=user, task=task, params=params or {})
    if upload is not None:
        job.file.save(upload.name or "upload", upload, save=False)
    job.save()
    dispatch_on_commit(job, task)
    return job


def job_dispatch_again(job: Job) -> None:
    """Send a queued job's task again when the transaction commits, if no send of it has reached the broker yet."""
    if job.status == JobStatus.QUEUED and job.dispatched_at is None:
        dispatch_on_commit(job, job.task)


def job_dispatch(*, now: datetime | None = None) -> int:
    """Periodic: send the tasks of queued jobs that never reached the broker, or were lost by it; returns how many."""
    return dispatch_due(Job, lambda job: job.task, now=now)


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


def job_finish(job: Job, *, status: str, **fields: object) -> bool:
    """End a running job once; False when it had already ended (the sweeper failed it): that status stays.

    A success clears any error. Call it inside the transaction that commits the job's work, so the
    work and the job's end are one commit.
    """
    now = timezone.now()
    if status == JobStatus.SUCCEEDED:
        fields.setdefault("error", "")
    running = Job.objects.filter(pk=job.pk, status=JobStatus.RUNNING)
    ended = running.update(status=status, finished_at=now, heartbeat_at=now, updated_at=now, **fields)
    if not ended:
        logger.warning("job %s had already ended; its late %s outcome is dropped", job.pk, status)
    return bool(ended)


def job_progress(job: Job, phase: str, fraction: float) -> None:
    """Record progress (and a heartbeat) on a running job."""
    now = timezone.now()
    Job.objects.filter(pk=job.pk, status=JobStatus.RUNNING).update(
        phase=phase, progress=fraction, heartbeat_at=now, updated_at=now
    )


def job_beating(job: Job) -> Heartbeat:
    """A heartbeat for the job while its body runs: `with job_beating(job): ...`."""
    return Heartbeat(Job, job.pk)


def job_sweep(*, now: datetime | None = None) -> int:
    """Fail running jobs whose worker stopped sending heartbeats, then delete the uploads of jobs that ended; returns
    how many jobs failed."""
    timeout = settings.JOB_HEARTBEAT_TIMEOUT_S
    cutoff = (now or timezone.now()) - timedelta(seconds=timeout)
    stale = Job.objects.filter(status=JobStatus.RUNNING, heartbeat_at__lt=cutoff)
    failed = stale.update(
        status=JobStatus.FAILED,
        error=f"the worker running this job stopped responding (no heartbeat for {timeout} s); start it again",
        finished_at=timezone.now(),
        updated_at=timezone.now(),
    )
    job_uploads_sweep(now=now)
    return failed


def job_file_discard(job: Job) -> None:
    """Delete a job's stored upload and forget its name."""
    if job.file.name:
        job.file.storage.delete(job.file.name)
        Job.objects.filter(pk=job.pk, file=job.file.name).update(file="")


def job_uploads_sweep(*, now: datetime | None = None) -> int:
    """Delete the uploads of jobs that ended (a killed worker never deleted its own); returns how many."""
    deleted = 0
    for job in Job.objects.filter(status__in=(JobStatus.SUCCEEDED, JobStatus.FAILED)).exclude(file=""):
        job_file_discard(job)
        deleted += 1
    return deleted


def stray_uploads_sweep(*, now: datetime | None = None) -> int:
    """Delete the files under the uploads folder that no job names, once an hour old (their request died before
    its job was saved); returns how many. Only the storage API, so it works on S3-compatible storage too."""
    storage = Job._meta.get_field("file").storage
    named = set(Job.objects.exclude(file="").values_list("file", flat=True))
    return stray_files_delete(storage, UPLOADS, named, now=now)


def stray_files_delete(storage: Storage, folder: str, named: set[str], *, now: datetime | None = None) -> int:
    """Delete the files under ``folder`` that no row names (``named``), once an hour old: what a request or a
    worker that died between writing a file and recording it left behind. Returns how many."""
    deleted = 0
    cutoff = (now or timezone.now()) - ORPHAN_UPLOAD_AGE
    for name in _files_under(storage, folder):
        if name not in named and storage.get_modified_time(name) < cutoff:
            storage.delete(name)
            logger.info("deleted %s: nothing names it", name)
            deleted += 1
    return deleted


def _files_under(storage: Storage, folder: str) -> Iterator[str]:
    try:
        folders, files = storage.listdir(folder)
    except FileNotFoundError:
        return  # nothing was ever uploaded
    for name in files:
        yield f"{folder}/{name}"
    for sub in folders:
        yield from _files_under(storage, f"{folder}/{sub}")
