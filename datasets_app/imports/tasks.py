"""Background jobs of imports; each takes ids and calls one service."""

from celery import shared_task


@shared_task(queue="default")
def import_job_task(job_id: int) -> None:
    """Import an uploaded file; a redelivered task finds the job claimed and does nothing."""
    from datasets_app.imports.services import import_job_run

    import_job_run(job_id=job_id)


@shared_task(queue="default")
def import_stage_sweep_task() -> None:
    """Periodic: delete the hidden pairs of imports whose worker died (SQLite's staged imports)."""
    from datasets_app.imports.staging import import_stages_sweep

    import_stages_sweep()


@shared_task(queue="default")
def import_statistics_task() -> None:
    """After a large import made in a web request: refresh the planner's statistics (PostgreSQL's ANALYZE)."""
    from datasets_app.imports.services import refresh_statistics

    refresh_statistics()
