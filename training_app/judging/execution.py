"""A typed prompt answered by both judged models on a worker (the web process never loads a model)."""

import logging

from datasets_app.jobs.outbox import claim_queued, finish_running
from training_app.execution import (
    EVAL_MAX_NEW_TOKENS,
    answer_prompt,
    loaded_base_model,
    tuned_model,
    usual_system_prompt,
)
from training_app.ml.config import is_quantized_method
from training_app.models import ABItem, ABStatus, TrainingRun

logger = logging.getLogger(__name__)


def ab_claim(item_id: int) -> ABItem | None:
    """The queued item, now marked running; None when another delivery of its task already took it."""
    return claim_queued(ABItem, item_id, queued=ABStatus.QUEUED, running=ABStatus.RUNNING)


def ab_finish(item: ABItem, *, status: str, **fields: str) -> bool:
    """Record the outcome, only on an item still running: one the sweeper failed meanwhile stays failed."""
    finished = finish_running(item, running=ABStatus.RUNNING, status=status, **fields)
    if not finished:
        logger.warning("judging item %s was no longer running; its late answers are dropped", item.pk)
    return finished


def ab_answer(*, item_id: int) -> None:
    """Answer a typed prompt with the item's two models, greedily, as each was taught (the usual system prompt of
    its training pairs; the base model is asked like the run it is judged against); at most once."""
    item = ab_claim(item_id)
    if item is None:
        return
    try:
        limit = EVAL_MAX_NEW_TOKENS.get(item.run.snapshot.kind, 128)
        a_output, b_output = (_answer(item, name, limit) for name in (item.a_model, item.b_model))
    except Exception as error:
        logger.exception("judging item %s failed", item.pk)
        message = f"the models could not answer ({type(error).__name__}): {error}"[:2000]
        ab_finish(item, status=ABStatus.FAILED, error=message)
    else:
        ab_finish(item, status=ABStatus.READY, a_output=a_output, b_output=b_output)


def _answer(item: ABItem, name: str, max_new_tokens: int) -> str:
    """`run:<id>`: that run's fine-tuned model; `base:<name>`: the base model (in 4-bit against a qlora run: the
    model it was trained from)."""
    kind, _, value = name.partition(":")
    if kind == "run":
        run = TrainingRun.objects.select_related("snapshot").get(pk=int(value))
        model = tuned_model(run)
    else:
        run = item.run
        model = loaded_base_model(value, quantized=is_quantized_method(run.method))
    return answer_prompt(model, item.prompt, system=usual_system_prompt(run), max_new_tokens=max_new_tokens)
