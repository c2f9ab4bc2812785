"""Thin Celery tasks of the training app: take ids, call one service."""

from celery import shared_task


@shared_task(queue="training")
def run_training_task(run_id: int) -> None:
    """Train a queued run; a redelivered task finds the run claimed and does nothing."""
    from training_app.execution import run_execute  # keeps torch out of the web process

    run_execute(run_id=run_id)


@shared_task(queue="default")
def playground_task(request_id: int) -> None:
    """Answer a queued playground prompt; a redelivered task finds the request claimed and does nothing."""
    from training_app.execution import playground_answer

    playground_answer(request_id=request_id)


@shared_task(queue="default")
def ab_answer_task(item_id: int) -> None:
    """Answer a prompt typed for blind judging with both models; a redelivered task finds the item claimed."""
    from training_app.judging.execution import ab_answer

    ab_answer(item_id=item_id)


@shared_task(queue="default")
def run_sweep_task() -> None:
    """Periodic: take runs, playground requests and typed judging prompts from workers that died."""
    from training_app.judging.services import ab_sweep
    from training_app.services import playground_sweep, run_sweep

    run_sweep()
    playground_sweep()
    ab_sweep()


@shared_task(queue="default")
def stray_checkpoints_sweep_task() -> None:
    """Periodic (less often: it lists the storage): delete the checkpoints and merged exports a dead worker left
    half-written, once an hour old."""
    from training_app.checkpoints import stray_checkpoints_sweep

    stray_checkpoints_sweep()


@shared_task(queue="default")
def run_dispatch_task() -> None:
    """Periodic: send the tasks of queued runs, playground requests and typed judging prompts the broker never got or
    lost (the outbox)."""
    from training_app.services import run_dispatch

    run_dispatch()


@shared_task(queue="default")
def failures_paraphrase_task(job_id: int) -> None:
    """Reword a run's failed prompts with a generator and write them as drafts; a redelivered task does nothing."""
    from training_app.failures import failures_paraphrase_run

    failures_paraphrase_run(job_id=job_id)


@shared_task(queue="training")
def run_export_task(job_id: int) -> None:
    """Build a run's merged model (loads the whole model, like training); a redelivered task does nothing."""
    from training_app.exports import merged_export_build

    merged_export_build(job_id=job_id)
