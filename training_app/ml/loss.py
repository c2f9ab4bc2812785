"""The loss on answer tokens only, for training steps and for validation."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import torch
from torch import nn
from transformers import PreTrainedTokenizerBase

from training_app.ml.data import IGNORE_INDEX, ChatExample, Encoded, collate, encode, make_batches, split_by_length
from training_app.ml.registry import pick_device

# On CPU a batch runs as several forward passes rather than waste more than this on padding.
CPU_MAX_PADDING = 0.1


def answer_loss_sum(model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Summed cross-entropy over the labelled (answer) tokens of a batch.

    Logits are projected only at positions whose next token is labelled; the rest of the
    vocabulary projection would be thrown away by the loss anyway.
    """
    targets = batch["labels"][:, 1:]
    wanted = targets != IGNORE_INDEX
    keep = torch.zeros_like(batch["labels"], dtype=torch.bool)
    keep[:, :-1] = wanted
    attention_mask = batch["attention_mask"]
    # Without padding the mask says nothing, and leaving it out keeps attention on the fast path.
    if bool(attention_mask.all()):
        attention_mask = None
    output = model(
        input_ids=batch["input_ids"],
        attention_mask=attention_mask,
        logits_to_keep=keep,
        use_cache=False,
    )
    logits = output.logits
    if logits.dim() != 2:  # a model that ignores a boolean logits_to_keep
        logits = logits[keep]
    return nn.functional.cross_entropy(logits.float(), targets[wanted], reduction="sum")


def validation_loss(
    model: nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    examples: Sequence[ChatExample] | Sequence[Encoded],
    max_len: int,
    batch_size: int,
) -> float | None:
    """Mean loss per answer token over ``examples``; None when there is nothing to measure."""
    encoded = [ex if isinstance(ex, Encoded) else encode(tokenizer, ex, max_len) for ex in examples]
    encoded = [e for e in encoded if e.n_labels]
    if not encoded:
        return None
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    try:
        with torch.inference_mode(), autocast(device):
            batches = make_batches(encoded, batch_size, group_by_length=True, seed=0)
            for indices in forward_passes(batches, encoded, device):
                batch = to_device(collate([encoded[i] for i in indices], tokenizer.pad_token_id), device)
                total += answer_loss_sum(model, batch).item()
                count += sum(encoded[i].n_labels for i in indices)
    finally:
        model.train(was_training)
    return total / count


def autocast(device: torch.device) -> AbstractContextManager[Any]:
    _, dtype = pick_device()
    if device.type == "cuda" and dtype == torch.bfloat16:
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return nullcontext()


def forward_passes(
    batches: list[list[int]], encoded: Sequence[Encoded], device: torch.device, micro_batch: int | None = None
) -> Iterator[list[int]]:
    """The forward passes for some batches: on CPU, each batch split into runs of similar length; with
    ``micro_batch``, no pass holds more examples than that.

    A CPU spends its time in proportion to the positions it computes, padding included, and a
    run of a few sequences already fills its matrix units; a GPU wants the whole batch at once.
    """
    for batch in batches:
        passes = split_by_length(batch, encoded, CPU_MAX_PADDING) if device.type == "cpu" else [batch]
        for indices in passes:
            step = micro_batch or len(indices)
            for start in range(0, len(indices), step):
                yield indices[start : start + step]


def to_device(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    return {key: value.to(device, non_blocking=True) for key, value in batch.items()}
