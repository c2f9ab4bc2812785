"""Checkpoints of a training loop: what a fresh process needs to go on from an optimizer step as if it had never
stopped (trained weights, optimizer, scheduler, random states, the loop's counters). The data order needs no
saving: each epoch's batches come from the seed, so the step number says where the loop was."""

from __future__ import annotations

import random
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn

from training_app.ml.distributed import SINGLE, Sync

FILE = "checkpoint.pt"


@dataclass
class LoopCounters:
    """The loop's running figures at the end of an optimizer step."""

    step: int = 0
    tokens: int = 0
    seconds: float = 0.0
    epoch_loss_sum: float = 0.0  # this epoch so far: summed loss and what it is averaged over
    epoch_count: int = 0
    val_loss: float | None = None


@dataclass(frozen=True)
class LoopOptions:
    """How a loop runs beyond its settings: from a checkpoint, and at most how many examples a forward pass takes
    (smaller passes accumulate into the same steps: the results do not change, the memory does)."""

    resume: Path | None = None
    micro_batch: int | None = None
    memory_check: Callable[[int], None] | None = None  # after each forward pass, with its examples; may raise
    sync: Sync = SINGLE  # this process's part in data-parallel training


class Checkpointer(Protocol):
    def checkpoint_due(self, step: int) -> bool: ...

    def on_checkpoint(self, step: int, directory: Path) -> None: ...


def checkpoint_if_due(
    callbacks: Checkpointer,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    counters: LoopCounters,
    sync: Sync = SINGLE,
) -> None:
    """Write a checkpoint when the callbacks want one at this step, and hand it to them (they store it). In a group
    rank 0's callbacks decide, and rank 0 writes; a sharded model is gathered for it by every process."""
    if not sync.agree(callbacks.checkpoint_due(counters.step)):
        return
    if not (sync.leader or sync.sharded):
        return
    with tempfile.TemporaryDirectory(prefix="instructory-checkpoint-") as tmp:
        save_checkpoint(Path(tmp), model, optimizer, scheduler, counters, sync)
        if sync.leader:
            callbacks.on_checkpoint(counters.step, Path(tmp))


def save_checkpoint(
    directory: Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    counters: LoopCounters,
    sync: Sync = SINGLE,
) -> Path:
    """Write the checkpoint into ``directory`` (one file); returns its path. A sharded model is gathered whole (every
    process must call this) and written by rank 0 alone, in the format one process writes."""
    if sync.sharded:
        everything, optimizer_state = sync.gather_weights(model), sync.gather_optimizer(model, optimizer)
        trained = [name for name, p in model.named_parameters() if p.requires_grad]
        weights = {name: everything[name] for name in trained} if sync.leader else {}
    else:
        weights = {name: p.detach().cpu() for name, p in model.named_parameters() if p.requires_grad}
        optimizer_state = optimizer.state_dict()
    path = directory / FILE
    if not sync.leader:
        return path
    directory.mkdir(parents=True, exist_ok=True)
    state = {
        "weights": weights,
        "optimizer": optimizer_state,
        "scheduler": scheduler.state_dict(),
        "rng": _rng_state(),
        "counters": asdict(counters),
    }
    torch.save(state, path)
    return path


def load_checkpoint(
    directory: Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    sync: Sync = SINGLE,
) -> LoopCounters:
    """Restore a checkpoint written by save_checkpoint for the same model and settings; returns its counters.
    Whether a group or one process wrote it does not matter: a sharded model takes its shards of rank 0's copy
    (the others map the file without reading its weights)."""
    state = torch.load(Path(directory) / FILE, map_location="cpu", weights_only=True, mmap=sync.sharded)
    trained = {name: p for name, p in model.named_parameters() if p.requires_grad}
    if set(trained) != set(state["weights"]):
        raise ValueError("the checkpoint was written for another model or method: its trained weights differ")
    if sync.sharded:
        sync.scatter(model, optimizer, state["weights"], state["optimizer"])
    else:
        with torch.no_grad():
            for name, param in trained.items():
                param.copy_(state["weights"][name].to(param.device, param.dtype))
        optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    _set_rng_state(state["rng"])
    return LoopCounters(**state["counters"])


def _rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {"torch": torch.get_rng_state(), "python": list(_python_state())}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _python_state() -> tuple:
    version, internal, gauss = random.getstate()
    return version, list(internal), gauss


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
