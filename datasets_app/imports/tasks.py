"""Background jobs of imports; each takes ids and calls one service."""

from celery import shared_task


@shared_task(queue="default")
def import_job_task(job_id: int) -> None:
    """Import an uploaded file; a redelivered task finds the job claimed and does nothing."""
    from datasets_app.imports.services import import_job_run

    import_job_run(job_id=job_id)
