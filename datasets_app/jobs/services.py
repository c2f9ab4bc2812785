"""Background jobs of any kind: claim, progress (the heartbeat), finish, and the sweep of jobs whose worker died.

Each feature creates and runs its own kind of job with these; nothing here knows a feature.
"""

from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from datasets_app.models import Job, JobStatus

HEARTBEAT_TIMEOUT = timedelta(seconds=90)


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


def job_sweep(*, now: object = None) -> int:
    """Fail running jobs whose worker stopped sending heartbeats; returns how many."""
    cutoff = (now or timezone.now()) - HEARTBEAT_TIMEOUT
    stale = Job.objects.filter(status=JobStatus.RUNNING, heartbeat_at__lt=cutoff)
    return stale.update(
        status=JobStatus.FAILED,
        error="the worker running this job stopped responding (no heartbeat for 90 s); start it again",
        finished_at=timezone.now(),
        updated_at=timezone.now(),
    )
