"""Evaluating a model on held-out examples: validation loss, generated answers and their scores."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from torch import nn
from transformers import PreTrainedTokenizerBase

from training_app.ml.data import ChatExample
from training_app.ml.generate import generate
from training_app.ml.metrics import (
    exact_match,
    general_metrics,
    guardrail_metrics,
    is_refusal,
    mcq_metrics,
    token_f1,
)
from training_app.ml.train import validation_loss

__all__ = [
    "KINDS",
    "evaluate",
    "general_metrics",
    "guardrail_metrics",
    "is_refusal",
    "mcq_metrics",
]

KINDS = ("guardrail", "mcq", "general")


def evaluate(
    model: nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    examples: Sequence[ChatExample],
    kind: str,
    max_len: int,
    *,
    blocked_flags: Sequence[bool] | None = None,
    validate: Callable[[str], list[Any]] | None = None,
    max_new_tokens: int = 128,
    batch_size: int = 8,
) -> dict[str, Any]:
    """Score ``model`` on ``examples``; ``kind`` picks the metrics.

    - guardrail: ``blocked_flags`` says which prompts should be refused.
    - mcq: ``validate`` returns the problems of one generated question (none means valid).
    - general: each example's ``response`` is the reference answer.

    ``val_loss`` is the loss on the examples' own responses (None when none has one); each item
    holds the prompt and output with its per-item verdict.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}")
    if kind == "guardrail" and (blocked_flags is None or len(blocked_flags) != len(examples)):
        raise ValueError("guardrail evaluation needs one blocked flag per example")
    if kind == "mcq" and validate is None:
        raise ValueError("mcq evaluation needs a validate function")

    with_answers = [ex for ex in examples if ex.response]
    val_loss = validation_loss(model, tokenizer, with_answers, max_len, batch_size)
    outputs = generate(model, tokenizer, examples, max_new_tokens, batch_size=batch_size, max_prompt_len=max_len)
    items: list[dict[str, Any]] = [
        {"ref": ex.ref, "prompt": ex.prompt, "output": output} for ex, output in zip(examples, outputs, strict=True)
    ]
    if kind == "guardrail":
        assert blocked_flags is not None
        metrics = guardrail_metrics(outputs, blocked_flags)
        for item, blocked in zip(items, blocked_flags, strict=True):
            item.update(blocked=bool(blocked), refused=is_refusal(item["output"]))
    elif kind == "mcq":
        assert validate is not None
        found: dict[str, list[Any]] = {}

        def checked(text: str) -> list[Any]:  # validate each distinct output once
            if text not in found:
                found[text] = list(validate(text))
            return found[text]

        metrics = mcq_metrics(outputs, checked)
        for item in items:
            item["problems"] = [str(problem) for problem in checked(item["output"])]
    else:
        references = [ex.response for ex in examples]
        metrics = general_metrics(outputs, references)
        for item, reference in zip(items, references, strict=True):
            item.update(
                reference=reference,
                exact_match=exact_match(item["output"], reference),
                token_f1=token_f1(item["output"], reference),
            )
    return {"kind": kind, "val_loss": val_loss, **metrics, "items": items}
