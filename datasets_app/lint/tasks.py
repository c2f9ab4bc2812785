"""Background jobs of the lint; each takes ids and calls one service."""

from celery import shared_task


@shared_task(queue="default")
def lint_job_task(job_id: int) -> None:
    """Check every pair of a dataset and store the problems; a redelivered task does nothing."""
    from datasets_app.lint.jobs import lint_job_run

    lint_job_run(job_id=job_id)
