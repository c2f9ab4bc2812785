"""Preference tuning: DPO and ORPO on pairs of a chosen and a rejected answer to the same conversation.

Each pair is encoded twice, the chosen answer and the rejected one after the same context (system, history,
prompt), with labels on the final answer only: earlier assistant turns are context here whatever their weight.
A batch's chosen and rejected sequences go through the model in one forward pass, and as in supervised
training logits are projected only where an answer token is predicted.

DPO's reference is the model as training starts, and its log-probabilities are computed once, in one no-grad
pass over the pairs before the first step. With LoRA the fresh adapter is zero then, so that is the starting
model with the adapter disabled; with full fine-tuning it spares a second copy of the weights. It is cheaper
than a reference forward with the adapter disabled in every step (one pass in all rather than one per epoch)
and holds only two numbers per pair. ORPO needs no reference.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F  # noqa: N812
from transformers import PreTrainedTokenizerBase

from training_app.ml.checkpoint import LoopOptions
from training_app.ml.config import TrainConfig, method_description, steps_per_epoch
from training_app.ml.data import IGNORE_INDEX, ChatExample, Encoded, collate, encode_many, make_batches
from training_app.ml.distributed import Sync
from training_app.ml.loss import autocast, forward_passes, to_device
from training_app.ml.train import (
    CANCELLED,
    Callbacks,
    NullCallbacks,
    Objective,
    StepFigures,
    TrainResult,
    _seed,
    run_loop,
)

__all__ = ["EncodedPair", "dpo_loss", "encode_pairs", "fit_preference", "orpo_loss", "preference_accuracy"]

# On CPU a forward pass holds at most this many positions (chosen and rejected, padded), so long pairs cannot
# exhaust a small machine's memory: training keeps about 1.5-2 MB of activations a position on SmolLM2-135M. Below
# it (batches of short pairs) a batch's run is not cut, as cutting smaller cost CPU time (measured at 512 and 256).
CPU_MAX_PASS_TOKENS = 2048
# Keeps log(1 - p) finite for an answer the model already gives with certainty (ORPO's odds).
_MAX_MEAN_LOGP = -1e-6


@dataclass
class EncodedPair:
    chosen: Encoded
    rejected: Encoded

    def __len__(self) -> int:  # what batching by length sees: the longer of the two
        return max(len(self.chosen), len(self.rejected))

    @property
    def trainable(self) -> bool:
        return bool(self.chosen.n_labels and self.rejected.n_labels)

    @property
    def truncated(self) -> bool:
        return self.chosen.truncated or self.rejected.truncated


def _final_answer_only(ex: ChatExample) -> ChatExample:
    history = [{**turn, "weight": 0} if turn.get("role") == "assistant" else turn for turn in ex.history]
    return replace(ex, history=history)


def encode_pairs(
    tokenizer: PreTrainedTokenizerBase, examples: Sequence[ChatExample], max_len: int
) -> list[EncodedPair]:
    """Each example (``response`` chosen, ``rejected`` set) as its two encodings, each truncated as SFT's is."""
    missing = sum(ex.rejected is None for ex in examples)
    if missing:
        raise ValueError(f"{missing} of {len(examples)} examples have no rejected answer: a preference pair needs one")
    context = [_final_answer_only(ex) for ex in examples]
    encoded = encode_many(tokenizer, [*context, *(replace(ex, response=ex.rejected) for ex in context)], max_len)
    return [EncodedPair(encoded[i], encoded[len(examples) + i]) for i in range(len(examples))]


# --- log-probabilities and losses ---------------------------------------------------------------


def sequence_logps(model: nn.Module, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Each row's summed log-probability of its labelled tokens, and how many there are."""
    targets = batch["labels"][:, 1:]
    wanted = targets != IGNORE_INDEX
    keep = torch.zeros_like(batch["labels"], dtype=torch.bool)
    keep[:, :-1] = wanted
    attention_mask = None if bool(batch["attention_mask"].all()) else batch["attention_mask"]
    logits = model(
        input_ids=batch["input_ids"], attention_mask=attention_mask, logits_to_keep=keep, use_cache=False
    ).logits
    if logits.dim() != 2:  # a model that ignores a boolean logits_to_keep
        logits = logits[keep]
    token_logps = -F.cross_entropy(logits.float(), targets[wanted], reduction="none")
    rows = wanted.nonzero()[:, 0]  # the row of each kept position, in the order the logits come
    sums = torch.zeros(len(targets), device=token_logps.device).index_add(0, rows, token_logps)
    return sums, wanted.sum(dim=1)


def dpo_loss(
    chosen: torch.Tensor, rejected: torch.Tensor, ref_chosen: torch.Tensor, ref_rejected: torch.Tensor, beta: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-pair DPO loss (sigmoid) from summed log-probs, and the implicit rewards β·(policy − reference)."""
    chosen_rewards = beta * (chosen - ref_chosen)
    rejected_rewards = beta * (rejected - ref_rejected)
    return -F.logsigmoid(chosen_rewards - rejected_rewards), chosen_rewards.detach(), rejected_rewards.detach()


def orpo_loss(
    mean_chosen: torch.Tensor, mean_rejected: torch.Tensor, beta: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-pair ORPO loss from mean log-probs per token: the chosen answer's NLL plus β times the odds-ratio term
    (Hong et al. 2024); the rewards are β times the mean log-probs, as TRL reports them."""
    mean_chosen, mean_rejected = mean_chosen.clamp(max=_MAX_MEAN_LOGP), mean_rejected.clamp(max=_MAX_MEAN_LOGP)
    log_odds = (mean_chosen - mean_rejected) - (
        torch.log1p(-torch.exp(mean_chosen)) - torch.log1p(-torch.exp(mean_rejected))
    )
    losses = -mean_chosen - beta * F.logsigmoid(log_odds)
    return losses, beta * mean_chosen.detach(), beta * mean_rejected.detach()


@dataclass
class PassOutput:
    losses: torch.Tensor  # per pair, with grad when the model has
    chosen_rewards: torch.Tensor
    rejected_rewards: torch.Tensor
    logp_chosen: torch.Tensor  # summed (DPO) or mean per token (ORPO): what the objective compares
    logp_rejected: torch.Tensor
    tokens: int


def _pair_forward(
    model: nn.Module, pairs: Sequence[EncodedPair], indices: Sequence[int], pad_id: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, int]:
    """Summed log-probs and label counts of the chosen and of the rejected answers, in one forward pass."""
    rows = [pairs[i].chosen for i in indices] + [pairs[i].rejected for i in indices]
    batch = to_device(collate(rows, pad_id), device)
    sums, counts = sequence_logps(model, batch)
    n = len(indices)
    return sums[:n], sums[n:], counts[:n], counts[n:], int(batch["attention_mask"].sum())


def _pair_pass(
    model: nn.Module,
    pairs: Sequence[EncodedPair],
    indices: Sequence[int],
    reference: tuple[list[float], list[float]] | None,
    cfg: TrainConfig,
    pad_id: int,
) -> PassOutput:
    device = next(model.parameters()).device
    chosen, rejected, n_chosen, n_rejected, tokens = _pair_forward(model, pairs, indices, pad_id, device)
    if cfg.objective == "dpo":
        assert reference is not None
        ref_chosen = torch.tensor([reference[0][i] for i in indices], device=chosen.device)
        ref_rejected = torch.tensor([reference[1][i] for i in indices], device=chosen.device)
        losses, good, bad = dpo_loss(chosen, rejected, ref_chosen, ref_rejected, cfg.beta)
    else:
        chosen, rejected = chosen / n_chosen, rejected / n_rejected
        losses, good, bad = orpo_loss(chosen, rejected, cfg.beta)
    return PassOutput(losses, good, bad, chosen.detach(), rejected.detach(), tokens)


def pair_passes(
    batches: list[list[int]], pairs: Sequence[EncodedPair], device: torch.device, micro_batch: int | None = None
) -> Iterator[list[int]]:
    """``forward_passes`` for pairs; on CPU a pass is also cut where it would exceed ``CPU_MAX_PASS_TOKENS``."""
    for run in forward_passes(batches, pairs, device, micro_batch):
        if device.type != "cpu":
            yield run
            continue
        width = len(pairs[run[0]])  # the longest: runs are sorted
        per_pass = max(1, CPU_MAX_PASS_TOKENS // (2 * width))
        for start in range(0, len(run), per_pass):
            yield run[start : start + per_pass]


def summed_logps(
    model: nn.Module,
    pairs: Sequence[EncodedPair],
    pad_id: int,
    batch_size: int,
    should_stop: Callable[[], bool] | None = None,
) -> tuple[list[float], list[float]] | None:
    """Each pair's summed log-probability of its chosen and of its rejected answer, in eval mode without grad;
    None when ``should_stop`` says so between batches."""
    device = next(model.parameters()).device
    chosen, rejected = [0.0] * len(pairs), [0.0] * len(pairs)
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode(), autocast(device):
            batches = make_batches(pairs, batch_size, group_by_length=True, seed=0)
            for indices in pair_passes(batches, pairs, device):
                good, bad, *_ = _pair_forward(model, pairs, indices, pad_id, device)
                for i, a, b in zip(indices, good.tolist(), bad.tolist(), strict=True):
                    chosen[i], rejected[i] = a, b
                if should_stop is not None and should_stop():
                    return None
    finally:
        model.train(was_training)
    return chosen, rejected


def preference_accuracy(
    model: nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    examples: Sequence[ChatExample],
    max_len: int,
    batch_size: int = 8,
) -> dict[str, Any]:
    """The share of pairs whose chosen answer the model scores above the rejected one, by summed log-probability
    of the answer tokens; with each pair's verdict and log-probs, in the order of ``examples``."""
    pairs = encode_pairs(tokenizer, examples, max_len)
    logps = summed_logps(model, pairs, tokenizer.pad_token_id, batch_size) if pairs else ([], [])
    assert logps is not None
    chosen, rejected = logps
    correct = [a > b for a, b in zip(chosen, rejected, strict=True)]
    return {
        "accuracy": sum(correct) / len(correct) if correct else None,
        "n": len(correct),
        "correct": correct,
        "chosen_logp": chosen,
        "rejected_logp": rejected,
    }


def preference_loss(
    model: nn.Module,
    pairs: Sequence[EncodedPair],
    reference: tuple[list[float], list[float]] | None,
    cfg: TrainConfig,
    pad_id: int,
) -> float | None:
    """The mean preference loss per pair (validation); None without pairs."""
    if not pairs:
        return None
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    total = 0.0
    try:
        with torch.inference_mode(), autocast(device):
            batches = make_batches(pairs, cfg.batch_size, group_by_length=True, seed=0)
            for indices in pair_passes(batches, pairs, device):
                total += _pair_pass(model, pairs, indices, reference, cfg, pad_id).losses.sum().item()
    finally:
        model.train(was_training)
    return total / len(pairs)


# --- the loop -----------------------------------------------------------------------------------


class StepStats:
    """Sums over the pairs of one optimizer step, turned into the step's metrics."""

    def __init__(self) -> None:
        self.pairs, self.loss, self.margin, self.correct, self.chosen, self.rejected = 0, 0.0, 0.0, 0, 0.0, 0.0
        self.tokens = 0

    def synced(self, sync: Sync, params: Sequence[nn.Parameter]) -> int:
        """Sum the step's gradients and figures over the processes training together; returns the step's tokens."""
        figures = [self.pairs, self.loss, self.margin, self.correct, self.chosen, self.rejected, self.tokens]
        pairs, self.loss, self.margin, correct, self.chosen, self.rejected, tokens = sync.step_end(params, figures)
        self.pairs, self.correct, self.tokens = int(pairs), int(correct), int(tokens)
        return self.tokens

    def add(self, out: PassOutput) -> None:
        self.tokens += out.tokens
        self.pairs += len(out.losses)
        self.loss += out.losses.detach().sum().item()
        self.margin += (out.chosen_rewards - out.rejected_rewards).sum().item()
        self.correct += int((out.chosen_rewards > out.rejected_rewards).sum())
        self.chosen += out.logp_chosen.sum().item()
        self.rejected += out.logp_rejected.sum().item()

    def metrics(self) -> dict[str, float]:
        n = self.pairs
        return {
            "loss": self.loss / n,
            "reward_margin": self.margin / n,
            "reward_accuracy": self.correct / n,
            "logp_chosen": self.chosen / n,
            "logp_rejected": self.rejected / n,
        }


def _training_pairs(
    tokenizer: PreTrainedTokenizerBase, train_set: Sequence[ChatExample], max_len: int
) -> tuple[list[EncodedPair], int]:
    pairs = encode_pairs(tokenizer, train_set, max_len)
    truncated = sum(pair.truncated for pair in pairs)
    pairs = [pair for pair in pairs if pair.trainable]
    if not pairs:
        raise ValueError("there is nothing to train on: no preference pair has two answers")
    return pairs, truncated


def _cancelled_before_training(truncated: int, total_steps: int) -> TrainResult:
    return TrainResult(
        status=CANCELLED, steps=0, train_tokens=0, truncated_count=truncated, final_loss=None, val_loss=None,
        tokens_per_s=0.0, total_steps=total_steps,
    )  # fmt: skip


def fit_preference(
    model: nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    train_set: Sequence[ChatExample],
    val_set: Sequence[ChatExample],
    cfg: TrainConfig,
    callbacks: Callbacks | None = None,
    *,
    options: LoopOptions | None = None,
) -> TrainResult:
    """``fit`` for preference pairs (``cfg.objective`` dpo or orpo): train ``model`` in place, save nothing.

    Each step reports loss, learning_rate, grad_norm, tokens_per_s, epoch, and the batch means reward_margin,
    reward_accuracy (chosen rewarded above rejected), logp_chosen and logp_rejected (summed for DPO, per token
    for ORPO). Validation pairs without a rejected answer are left out.
    """
    if cfg.objective not in ("dpo", "orpo"):
        raise ValueError(f"fit_preference trains dpo or orpo, not {cfg.objective!r}")
    callbacks = callbacks or NullCallbacks()
    _seed(cfg.seed)
    pairs, truncated = _training_pairs(tokenizer, train_set, cfg.max_seq_len)
    val_examples = [ex for ex in val_set if ex.rejected is not None]
    val_pairs = [pair for pair in encode_pairs(tokenizer, val_examples, cfg.max_seq_len) if pair.trainable]
    epoch_steps = steps_per_epoch(len(pairs), cfg)
    total_steps = epoch_steps * cfg.epochs
    pad_id = tokenizer.pad_token_id
    device = next(model.parameters()).device
    callbacks.on_log(
        f"training {cfg.objective} (beta {cfg.beta:g}) on {len(pairs)} preference pairs ({truncated} truncated to "
        f"{cfg.max_seq_len} tokens), {cfg.epochs} epochs, {total_steps} steps, {method_description(cfg.method)}, on {device}"
    )
    options = options or LoopOptions()
    reference = val_reference = None
    if cfg.objective == "dpo":
        callbacks.on_log("computing the reference model's log-probabilities (one pass over the pairs)")

        def stop() -> bool:  # every process stops, or none
            return options.sync.agree(callbacks.should_stop())

        reference = summed_logps(model, pairs, pad_id, cfg.batch_size, stop)
        val_reference = summed_logps(model, val_pairs, pad_id, cfg.batch_size)
        if reference is None:
            callbacks.on_log("cancelled before the first step")
            return _cancelled_before_training(truncated, total_steps)

    def step(group: list[list[int]], params: list[nn.Parameter]) -> StepFigures:
        step_pairs = sum(len(batch) for batch in group)
        stats = StepStats()
        for indices, counts in options.sync.mine(pair_passes(group, pairs, device, options.micro_batch)):
            with autocast(device):
                out = _pair_pass(model, pairs, indices, reference, cfg, pad_id)
            if options.memory_check is not None:
                options.memory_check(len(indices))
            if not counts:
                (out.losses.sum() * 0).backward()  # only to take part in the sharded model's collectives
                continue
            (out.losses.sum() / step_pairs).backward()  # every pair weighs alike, whatever the passes
            stats.add(out)
        tokens = stats.synced(options.sync, params)
        return StepFigures(stats.loss, stats.pairs, tokens, stats.metrics())

    def validate() -> float | None:
        return preference_loss(model, val_pairs, val_reference, cfg, pad_id)

    return run_loop(model, pairs, cfg, callbacks, options, Objective(step, validate, truncated))
