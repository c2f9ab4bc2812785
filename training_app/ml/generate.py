"""Answers from a model: greedy, so the same model and prompts always give the same text."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from transformers import GenerationConfig, PreTrainedTokenizerBase

from training_app.ml.data import ChatExample, encode_prompt


def generate(
    model: nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    prompts: Sequence[ChatExample],
    max_new_tokens: int = 128,
    *,
    batch_size: int = 16,
    max_prompt_len: int | None = None,
) -> list[str]:
    """One answer per prompt (its ``response`` is ignored), in order, without the prompt.

    Prompts are rendered with the chat template exactly as in training, batched by length with
    left padding, and decoded greedily up to the end-of-turn token or ``max_new_tokens``.
    """
    if not prompts:
        return []
    encoded = [encode_prompt(tokenizer, ex, max_prompt_len) for ex in prompts]
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
    config = GenerationConfig(
        do_sample=False,
        num_beams=1,
        max_new_tokens=max_new_tokens,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=_stop_ids(model, tokenizer),
    )
    device = next(model.parameters()).device
    answers = [""] * len(prompts)
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            for start in range(0, len(order), batch_size):
                rows = order[start : start + batch_size]
                width = max(len(encoded[i]) for i in rows)
                input_ids = torch.full((len(rows), width), tokenizer.pad_token_id, dtype=torch.long)
                attention_mask = torch.zeros((len(rows), width), dtype=torch.long)
                for row, i in enumerate(rows):
                    input_ids[row, width - len(encoded[i]) :] = torch.tensor(encoded[i])
                    attention_mask[row, width - len(encoded[i]) :] = 1
                output = model.generate(
                    input_ids=input_ids.to(device),
                    attention_mask=attention_mask.to(device),
                    generation_config=config,
                )
                for row, i in enumerate(rows):
                    text = tokenizer.decode(output[row, width:], skip_special_tokens=True)
                    answers[i] = text.strip()
    finally:
        model.train(was_training)
    return answers


def _stop_ids(model: nn.Module, tokenizer: PreTrainedTokenizerBase) -> list[int]:
    ids = {tokenizer.eos_token_id} if tokenizer.eos_token_id is not None else set()
    configured = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    if isinstance(configured, int):
        ids.add(configured)
    elif configured:
        ids.update(configured)
    return sorted(ids)
