"""Background jobs of the job machinery itself; each takes ids and calls one service."""

from celery import shared_task


@shared_task(queue="default")
def job_sweep_task() -> None:
    """Periodic: fail jobs whose worker died."""
    from datasets_app.jobs.services import job_sweep

    job_sweep()
