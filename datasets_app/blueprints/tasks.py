"""Background jobs of templates; each takes ids and calls one service."""

from celery import shared_task


@shared_task(queue="default")
def generate_job_task(job_id: int) -> None:
    """Generate pairs from a template or draft responses with a model; a redelivered task does nothing."""
    from datasets_app.blueprints.services import generate_job_run

    generate_job_run(job_id=job_id)
