"""Background jobs of the datasets app; each takes ids and calls one service."""

from celery import shared_task


@shared_task(queue="default")
def dataset_rehash_task(dataset_id: int) -> None:
    """Recompute every pair's content hash (after the normalization rules change)."""
    from datasets_app.services import dataset_rehash

    dataset_rehash(dataset_id=dataset_id)


@shared_task(queue="default")
def import_job_task(job_id: int) -> None:
    """Import an uploaded file; a redelivered task finds the job claimed and does nothing."""
    from datasets_app.jobs import import_job_run

    import_job_run(job_id=job_id)


@shared_task(queue="default")
def job_sweep_task() -> None:
    """Periodic: fail jobs whose worker died."""
    from datasets_app.jobs import job_sweep

    job_sweep()


@shared_task(queue="default")
def generate_job_task(job_id: int) -> None:
    """Generate pairs from a template or draft responses with a model; a redelivered task does nothing."""
    from datasets_app.templating import generate_job_run

    generate_job_run(job_id=job_id)


@shared_task(queue="default")
def dataset_lint_task(dataset_id: int, user_id: int) -> None:
    """Check every pair of a dataset again and store the problems (after its template changed)."""
    from django.contrib.auth import get_user_model

    from datasets_app.lint import dataset_lint_refresh
    from datasets_app.models import Dataset

    dataset = Dataset.objects.filter(pk=dataset_id).first()
    user = get_user_model().objects.filter(pk=user_id).first()
    if dataset is not None and user is not None:
        dataset_lint_refresh(dataset=dataset, user=user)
