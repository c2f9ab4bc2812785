"""Background jobs of the datasets app; each takes ids and calls one service."""

from celery import shared_task


@shared_task(queue="default")
def dataset_rehash_task(dataset_id: int) -> None:
    """Recompute every pair's content hash (after the normalization rules change)."""
    from datasets_app.services import dataset_rehash

    dataset_rehash(dataset_id=dataset_id)


@shared_task(queue="default")
def generate_job_task(job_id: int) -> None:
    """Generate pairs from a template or draft responses with a model; a redelivered task does nothing."""
    from datasets_app.templating import generate_job_run

    generate_job_run(job_id=job_id)
