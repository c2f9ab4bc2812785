"""Thin Celery tasks of the OpenAI-compatible API: take ids, call one service."""

from celery import shared_task


@shared_task(queue="default")
def chat_completion_task(completion_id: int) -> None:
    """Answer a queued chat completion; a redelivered task finds it claimed (or given up) and does nothing."""
    from openai_app.completions import completion_answer  # the model loads here, on the worker

    completion_answer(completion_id=completion_id)


@shared_task(queue="default")
def chat_completion_dispatch_task() -> None:
    """Periodic: send the queued completions the broker never got or lost, and fail those nobody waits for."""
    from openai_app.completions import completion_dispatch, completion_sweep

    completion_dispatch()
    completion_sweep()
