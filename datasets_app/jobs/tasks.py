"""Background jobs of the job machinery itself; each takes ids and calls one service."""

from celery import shared_task


@shared_task(queue="default")
def job_sweep_task() -> None:
    """Periodic: fail jobs whose worker died, and delete the uploads of jobs that ended."""
    from datasets_app.jobs.services import job_sweep

    job_sweep()


@shared_task(queue="default")
def stray_uploads_sweep_task() -> None:
    """Periodic (less often: it lists the storage): delete hour-old uploads no job names."""
    from datasets_app.jobs.services import stray_uploads_sweep

    stray_uploads_sweep()


@shared_task(queue="default")
def job_dispatch_task() -> None:
    """Periodic: send the tasks of queued jobs that never reached the broker or were lost by it (the outbox)."""
    from datasets_app.jobs.services import job_dispatch

    job_dispatch()
