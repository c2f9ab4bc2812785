"""Fine-tuning: our own loop on transformers + peft (LoRA, QLoRA or full), with cooperative cancel.

``train`` is the entry point the app calls: load the base (in 4-bit for QLoRA), attach LoRA (or not), ``fit``, save.
``fit`` trains a model already in memory and is public so tests and benchmarks can reuse it.

Speed on CPU comes from not computing what the loss ignores: examples are batched by length and
on CPU each batch runs as passes of similar length (almost no padding), logits are computed only
where the answer is (the 49k-wide vocabulary projection is a good share of a small model's work),
and nothing is checkpointed or recomputed.
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import torch
from torch import nn
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from training_app.ml.checkpoint import LoopCounters, LoopOptions, checkpoint_if_due, load_checkpoint
from training_app.ml.config import (
    ConfigError,
    TrainConfig,
    is_adapter_method,
    is_quantized_method,
    method_description,
    steps_per_epoch,
    validate_config,
)
from training_app.ml.data import ChatExample, collate, encode_many, make_batches
from training_app.ml.distributed import local_numel
from training_app.ml.loss import answer_loss_sum, autocast, forward_passes, to_device, validation_loss
from training_app.ml.registry import (
    INIT_DIR,
    copy_adapter,
    load_base,
    load_tokenizer,
    merge_adapter,
    pick_device,
    quiet_peft,
)

__all__ = [
    "Callbacks",
    "ConfigError",
    "NullCallbacks",
    "answer_loss_sum",
    "TrainConfig",
    "TrainResult",
    "fit",
    "prepare_model",
    "save_trained",
    "train",
    "validate_config",
    "validation_loss",
]

logger = logging.getLogger(__name__)

SUCCEEDED = "succeeded"
CANCELLED = "cancelled"

if TYPE_CHECKING:
    from peft import LoraConfig


class Callbacks(Protocol):
    def on_start(self, total_steps: int) -> None: ...

    def on_step(self, step: int, metrics: dict[str, float]) -> None:
        """After each optimizer step: loss, learning_rate, grad_norm, tokens_per_s, epoch."""

    def on_epoch(self, epoch: int, metrics: dict[str, float | None]) -> None:
        """After each epoch: val_loss (None without a validation set) and train_loss."""

    def on_log(self, line: str) -> None: ...

    def should_stop(self) -> bool:
        """Asked after every optimizer step; True ends training as cancelled."""

    def checkpoint_due(self, step: int) -> bool:
        """Asked after every optimizer step (at an epoch's end, after its validation): save a checkpoint now?"""

    def on_checkpoint(self, step: int, directory: Path) -> None:
        """A checkpoint of ``step`` is in ``directory`` (deleted when this returns): store it to resume from."""


class NullCallbacks:
    """Does nothing; subclass it to override only what you need."""

    def on_start(self, total_steps: int) -> None:
        pass

    def on_step(self, step: int, metrics: dict[str, float]) -> None:
        pass

    def on_epoch(self, epoch: int, metrics: dict[str, float | None]) -> None:
        pass

    def on_log(self, line: str) -> None:
        pass

    def should_stop(self) -> bool:
        return False

    def checkpoint_due(self, step: int) -> bool:
        return False

    def on_checkpoint(self, step: int, directory: Path) -> None:
        pass


@dataclass
class TrainResult:
    status: str  # "succeeded" or "cancelled"
    steps: int
    train_tokens: int  # real (unpadded) tokens fed forward, all epochs
    truncated_count: int
    final_loss: float | None  # mean training loss per answer token over the last epoch run
    val_loss: float | None
    tokens_per_s: float
    out_dir: Path | None = None  # None when cancelled: nothing is saved
    total_steps: int = 0
    train_seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "out_dir": str(self.out_dir) if self.out_dir else None}


# --- the entry point ---------------------------------------------------------------------------


def train(
    source_dir: Path,
    train_set: Sequence[ChatExample],
    val_set: Sequence[ChatExample],
    cfg: TrainConfig,
    out_dir: Path,
    callbacks: Callbacks | None = None,
    *,
    init_artifact: Path | None = None,
    options: LoopOptions | None = None,
) -> TrainResult:
    """Fine-tune the base model in ``source_dir`` and save the result to ``out_dir``.

    ``cfg.objective`` says what is learnt: supervised answers (sft), or preference pairs (dpo, orpo; each
    example's ``rejected`` set). With ``init_artifact`` (a finished LoRA artifact of an earlier run) the
    training starts from the base with that adapter merged in, and a fresh adapter (or all weights) is trained.

    LoRA saves adapter_model.safetensors + adapter_config.json, plus init/ (a copy of the init
    artifact's adapter, which ``registry.load_model`` merges first); full saves complete safetensors
    weights, the init adapter merged in. Both add the tokenizer and train_config.json. The directory
    appears only when everything is written; a cancelled run saves nothing.

    QLoRA trains a LoRA adapter over the base loaded in 4-bit NF4 and saves what LoRA saves; it takes no
    ``init_artifact`` (an adapter cannot be merged into 4-bit weights).
    """
    callbacks, options = callbacks or NullCallbacks(), options or LoopOptions()
    problems = validate_config(cfg.to_dict())
    if init_artifact is not None and is_quantized_method(cfg.method):
        problems.append(("method", "qlora cannot start from another run's adapter: its base is in 4-bit"))
    if problems:
        raise ConfigError(problems)
    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()):
        raise FileExistsError(f"{out_dir} is not empty")
    device, dtype = pick_device()
    if device == "cpu":
        _use_available_cores()
    # Full fine-tuning keeps float32 master weights; bf16 then only runs inside autocast.
    weights_dtype = dtype if is_adapter_method(cfg.method) else torch.float32
    sharded = cfg.method == "full" and options.sync.world > 1
    # Sharding moves each layer's share to the device, never the whole model.
    model = load_base(
        source_dir, device="cpu" if sharded else device, dtype=weights_dtype, quantized=is_quantized_method(cfg.method)
    )
    if init_artifact is not None:
        model = merge_adapter(model, Path(init_artifact))
        callbacks.on_log(f"merged the adapter of {init_artifact} into the base; training a fresh one on top")
    tokenizer = load_tokenizer(source_dir)
    model = prepare_model(model, cfg)
    if sharded:
        options = replace(options, sync=options.sync.shard(model))
        callbacks.on_log(
            f"sharded over {options.sync.world} processes (FSDP): the first holds {local_numel(model) / 1e6:.2f}M of "
            f"the {sum(p.numel() for p in model.parameters()) / 1e6:.2f}M weights, with their gradients and optimizer state"
        )
    result = _fit_objective(model, tokenizer, train_set, val_set, cfg, callbacks, options)
    if result.status != SUCCEEDED:
        return result
    weights = options.sync.gather_weights(model) if sharded else None  # every process takes part
    if not options.sync.leader:
        return result  # in data-parallel training rank 0 alone saves
    init = Path(init_artifact) if init_artifact is not None and is_adapter_method(cfg.method) else None
    save_trained(model, tokenizer, cfg, out_dir, base=source_dir, result=result, init_artifact=init, weights=weights)
    callbacks.on_log(f"saved to {out_dir}")
    return replace(result, out_dir=out_dir)


def _fit_objective(
    model: nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    train_set: Sequence[ChatExample],
    val_set: Sequence[ChatExample],
    cfg: TrainConfig,
    callbacks: Callbacks,
    options: LoopOptions,
) -> TrainResult:
    if cfg.objective == "sft":
        return fit(model, tokenizer, train_set, val_set, cfg, callbacks, options=options)
    from training_app.ml.preference import fit_preference  # it builds on this module

    return fit_preference(model, tokenizer, train_set, val_set, cfg, callbacks, options=options)


def lora_config(cfg: TrainConfig) -> LoraConfig:
    """The LoRA settings of a run (also what bench/train_bench.py gives TRL, so both train the same adapter)."""
    from peft import LoraConfig

    return LoraConfig(
        r=cfg.lora_r,
        lora_alpha=cfg.lora_alpha,
        lora_dropout=cfg.lora_dropout,
        target_modules=list(cfg.lora_target_modules),
        bias="none",
        task_type="CAUSAL_LM",
    )


def prepare_model(model: PreTrainedModel, cfg: TrainConfig) -> nn.Module:
    """Make ``model`` trainable per ``cfg``: wrap it with a fresh LoRA adapter, or unfreeze all."""
    _seed(cfg.seed)  # the adapter's initial weights come from the RNG
    if is_quantized_method(cfg.method):
        from peft import prepare_model_for_kbit_training

        # Freezes the 4-bit base and keeps its other weights in float32; checkpointing is switched on below, as for
        # the other methods (non-reentrant, so the inputs need no gradient).
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
        _keep_trainable_4bit_layout(model)
    if cfg.gradient_checkpointing:
        model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    if cfg.method == "full":
        model.requires_grad_(True)
        return model
    from peft import get_peft_model

    available = sorted({name.rsplit(".", 1)[-1] for name, module in model.named_modules() if _is_linear(module)})
    unknown = [name for name in cfg.lora_target_modules if name not in available]
    if unknown:
        raise ConfigError(
            [
                (
                    "lora_target_modules",
                    f"{', '.join(unknown)} not in this model (it has {', '.join(available)})",
                )
            ]
        )
    lora = lora_config(cfg)
    with quiet_peft():
        return get_peft_model(model, lora)


def save_trained(
    model: nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    cfg: TrainConfig,
    out_dir: Path,
    *,
    base: Path,
    result: TrainResult,
    init_artifact: Path | None = None,
    weights: dict[str, torch.Tensor] | None = None,
) -> None:
    """Write the artifact to ``out_dir`` at once (a temporary sibling renamed into place); with ``init_artifact``
    (LoRA only) a copy of its adapter goes in init/, so the artifact loads alone. ``weights``: the whole state of a
    sharded model, gathered, saved instead of the model's own."""
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.saving-", dir=out_dir.parent))
    try:
        tmp.chmod(0o755)
        if weights is None:
            model.save_pretrained(tmp)  # peft writes only the adapter; both write safetensors
        else:
            model.save_pretrained(tmp, state_dict=weights)
        tokenizer.save_pretrained(tmp)
        if init_artifact is not None:
            copy_adapter(init_artifact, tmp / INIT_DIR)
        summary = {
            "config": cfg.to_dict(),
            "base": str(base),
            "init_artifact": str(init_artifact) if init_artifact is not None else None,
            "result": {**result.to_dict(), "out_dir": str(out_dir)},
            "versions": _versions(),
        }
        (tmp / "train_config.json").write_text(json.dumps(summary, indent=2))
        if out_dir.exists():
            out_dir.rmdir()  # checked empty before training
        tmp.rename(out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


# --- the loop ---------------------------------------------------------------------------------


def fit(
    model: nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    train_set: Sequence[ChatExample],
    val_set: Sequence[ChatExample],
    cfg: TrainConfig,
    callbacks: Callbacks | None = None,
    *,
    options: LoopOptions | None = None,
) -> TrainResult:
    """Train ``model`` in place; returns the figures, saves nothing. With ``options.resume`` it goes on from that
    checkpoint's step, as if it had never stopped."""
    callbacks, options = callbacks or NullCallbacks(), options or LoopOptions()
    _seed(cfg.seed)
    encoded = encode_many(tokenizer, train_set, cfg.max_seq_len)
    truncated = sum(e.truncated for e in encoded)
    encoded = [e for e in encoded if e.n_labels]
    if not encoded:
        raise ValueError("there is nothing to train on: no example has an answer")
    val_encoded = encode_many(tokenizer, val_set, cfg.max_seq_len)
    device = next(model.parameters()).device
    pad_id = tokenizer.pad_token_id

    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    everything = sum(p.numel() for p in model.parameters())
    callbacks.on_log(
        f"training {len(encoded)} examples ({truncated} truncated to {cfg.max_seq_len} tokens), "
        f"{cfg.epochs} epochs, {steps_per_epoch(len(encoded), cfg) * cfg.epochs} steps, {method_description(cfg.method)}, "
        f"{trainable / 1e6:.2f}M of {everything / 1e6:.1f}M parameters trained, on {device}"
    )

    def step(group: list[list[int]], params: list[nn.Parameter]) -> StepFigures:
        step_labels = sum(encoded[i].n_labels for batch in group for i in batch)
        step_loss, step_tokens = 0.0, 0
        for batch_indices, counts in options.sync.mine(forward_passes(group, encoded, device, options.micro_batch)):
            batch = to_device(collate([encoded[i] for i in batch_indices], pad_id), device)
            with autocast(device):
                loss = answer_loss_sum(model, batch)
            if options.memory_check is not None:
                options.memory_check(len(batch_indices))
            if not counts:
                (loss * 0).backward()  # only to take part in the sharded model's collectives: adds nothing
                continue
            # Normalised by the answer tokens of the whole optimizer step, so accumulation
            # weighs every token alike whatever the batch boundaries.
            (loss / step_labels).backward()
            step_loss += loss.item()
            step_tokens += int(batch["attention_mask"].sum())
        step_loss, step_tokens = options.sync.step_end(params, [step_loss, step_tokens])
        return StepFigures(step_loss, step_labels, int(step_tokens), {"loss": step_loss / step_labels})

    def validate() -> float | None:
        return validation_loss(model, tokenizer, val_encoded, cfg.max_seq_len, cfg.batch_size)

    return run_loop(model, encoded, cfg, callbacks, options, Objective(step, validate, truncated))


@dataclass
class StepFigures:
    """One optimizer step's figures, summed over the processes training together."""

    loss_sum: float  # what the epoch's training loss adds up ...
    count: int  # ... and divides by (answer tokens, or pairs)
    tokens: int  # real tokens fed forward
    metrics: dict[str, float]  # the step's own: its loss, and what else the objective reports


@dataclass
class Objective:
    """What a loop trains for: one step's forward and backward passes (gradients left summed in the parameters),
    the validation loss, and how many examples were truncated."""

    step: Callable[[list[list[int]], list[nn.Parameter]], StepFigures]
    validate: Callable[[], float | None]
    truncated: int


def run_loop(
    model: nn.Module,
    items: Sequence[Any],
    cfg: TrainConfig,
    callbacks: Callbacks,
    options: LoopOptions,
    objective: Objective,
) -> TrainResult:
    """The training loop every objective shares: epochs of seeded steps, the optimizer and schedule, progress
    reports, cancel, checkpoints and resuming from one."""
    epoch_steps = steps_per_epoch(len(items), cfg)
    total_steps = epoch_steps * cfg.epochs
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = _optimizer(model, cfg)
    warmup = math.ceil(cfg.warmup_ratio * total_steps)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: _linear_schedule(step, warmup, total_steps))
    counters = _resumed(options, model, optimizer, scheduler, callbacks)
    callbacks.on_start(total_steps)

    model.train()
    status, epoch_loss = SUCCEEDED, None
    for epoch, groups in epoch_groups(items, cfg, counters, epoch_steps):
        for group in groups:
            started = time.perf_counter()
            figures = objective.step(group, params)
            counters.tokens += figures.tokens
            grad_norm = torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm or math.inf)
            learning_rate = scheduler.get_last_lr()[0]
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            counters.seconds += time.perf_counter() - started
            counters.step += 1
            counters.epoch_loss_sum += figures.loss_sum
            counters.epoch_count += figures.count
            epoch_loss = counters.epoch_loss_sum / counters.epoch_count
            callbacks.on_step(
                counters.step,
                {
                    **figures.metrics,
                    "learning_rate": learning_rate,
                    "grad_norm": float(grad_norm),
                    "tokens_per_s": counters.tokens / counters.seconds,
                    "epoch": counters.step / epoch_steps,
                },
            )
            if options.sync.agree(callbacks.should_stop()):
                status = CANCELLED
                break
            if counters.step % epoch_steps:  # an epoch's last step checkpoints after its validation
                checkpoint_if_due(callbacks, model, optimizer, scheduler, counters, options.sync)
        if status == CANCELLED:
            callbacks.on_log(f"cancelled after step {counters.step} of {total_steps}")
            break
        # Sharded, every process takes part in each forward pass; else the others would only compute the same figure.
        if options.sync.leader or options.sync.sharded:
            counters.val_loss = objective.validate()
        callbacks.on_epoch(epoch + 1, {"val_loss": counters.val_loss, "train_loss": epoch_loss})
        callbacks.on_log(
            f"epoch {epoch + 1}/{cfg.epochs}: train loss {epoch_loss:.4f}"
            + (f", validation loss {counters.val_loss:.4f}" if counters.val_loss is not None else "")
        )
        if epoch + 1 < cfg.epochs:
            checkpoint_if_due(callbacks, model, optimizer, scheduler, counters, options.sync)
    model.eval()
    return TrainResult(
        status=status,
        steps=counters.step,
        train_tokens=counters.tokens,
        truncated_count=objective.truncated,
        final_loss=epoch_loss,
        val_loss=counters.val_loss,
        tokens_per_s=counters.tokens / counters.seconds if counters.seconds else 0.0,
        total_steps=total_steps,
        train_seconds=counters.seconds,
    )


def _resumed(
    options: LoopOptions,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    callbacks: Callbacks,
) -> LoopCounters:
    """The loop's counters: fresh, or those of the checkpoint it resumes from (whose state is restored)."""
    if options.resume is None:
        return LoopCounters()
    counters = load_checkpoint(options.resume, model, optimizer, scheduler, options.sync)
    callbacks.on_log(f"resumed from the checkpoint of step {counters.step}")
    return counters


def epoch_groups(
    items: Sequence[Any], cfg: TrainConfig, counters: LoopCounters, epoch_steps: int
) -> Iterator[tuple[int, list[list[list[int]]]]]:
    """Each epoch still to run with its optimizer steps (groups of grad_accum batches, in the seeded order),
    starting after the step ``counters`` reached; an epoch's loss figures start afresh, except in the epoch a
    resumed loop starts in the middle of."""
    start_epoch, done = divmod(counters.step, epoch_steps)
    for epoch in range(start_epoch, cfg.epochs):
        batches = make_batches(items, cfg.batch_size, group_by_length=cfg.group_by_length, seed=cfg.seed + epoch)
        groups = list(_chunks(batches, cfg.grad_accum))
        if epoch == start_epoch and done:
            groups = groups[done:]
        else:
            counters.epoch_loss_sum, counters.epoch_count = 0.0, 0
        yield epoch, groups


# --- helpers ----------------------------------------------------------------------------------


def _seed(seed: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)  # seeds CUDA too


def _use_available_cores() -> None:
    # torch counts the machine's cores; a container or taskset may allow fewer.
    if hasattr(os, "sched_getaffinity"):
        allowed = len(os.sched_getaffinity(0))
        if 0 < allowed < torch.get_num_threads():
            torch.set_num_threads(allowed)


def _is_linear(module: nn.Module) -> bool:
    return isinstance(module, nn.Linear) or type(module).__name__ in ("Conv1D", "Linear8bitLt")


def _keep_trainable_4bit_layout(model: nn.Module) -> None:
    # On CPUs with AVX512-BF16, bitsandbytes repacks a 4-bit layer's weights for a faster kernel the first time the
    # layer runs in eval mode (validation), and keeps using that kernel, which has no backward: the gradients that
    # pass through the base would be silently lost for the rest of training.
    for module in model.modules():
        if hasattr(module, "support_avx512bf16_for_cpu"):
            module.support_avx512bf16_for_cpu = False


def _optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    decay, no_decay = [], []
    for param in model.parameters():
        if param.requires_grad:
            # Norm scales and biases are not decayed, as usual.
            (decay if param.dim() >= 2 else no_decay).append(param)
    groups = [
        {"params": decay, "weight_decay": cfg.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    return torch.optim.AdamW([g for g in groups if g["params"]], lr=cfg.learning_rate)


def _linear_schedule(step: int, warmup: int, total: int) -> float:
    if step < warmup:
        return (step + 1) / (warmup + 1)
    return max(0.0, (total - step) / max(1, total - warmup))


def _chunks(items: list[list[int]], size: int) -> Iterator[list[list[int]]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _versions() -> dict[str, str]:
    import peft
    import transformers

    return {"torch": torch.__version__, "transformers": transformers.__version__, "peft": peft.__version__}
