"""Background jobs of any kind: claim, progress (the heartbeat), finish, and the sweep of jobs whose worker died.

Each feature creates and runs its own kind of job with these; nothing here knows a feature.
"""

import logging
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from datasets_app.jobs.heartbeat import Heartbeat
from datasets_app.models import Job, JobStatus

logger = logging.getLogger(__name__)


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
