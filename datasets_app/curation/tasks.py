"""Background jobs of curation; each takes ids and calls one service."""

from celery import shared_task


@shared_task(queue="default")
def dataset_rehash_task(dataset_id: int) -> None:
    """Recompute every pair's content hash (after the normalization rules change)."""
    from datasets_app.curation.services import dataset_rehash

    dataset_rehash(dataset_id=dataset_id)
