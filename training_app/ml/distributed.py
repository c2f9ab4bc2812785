"""Data-parallel training over several processes (GPUs, or CPU processes on gloo), started by torchrun.

Every process holds the whole (seeded) data order; each optimizer step's forward passes are dealt out among them,
every process backpropagates its share scaled by the step's total, and the gradients are summed across processes
before the step: the same step a single process takes, in pieces. Rank 0 alone reports (metrics, logs,
checkpoints, the artifact); a cancel it sees reaches the others at the next step.

A LoRA run keeps the whole model in every process (its adapter is small). A full fine-tune is sharded with FSDP
(``Sync.shard``): each process holds about 1/N of the weights, gradients and optimizer state, gathers a layer's
weights only while it runs, and FSDP sums the gradients itself; checkpoints and the artifact are gathered whole to
rank 0, in the format a single process writes.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import nn


@dataclass(frozen=True)
class Sync:
    """One process's part in a group of ``world`` processes; the default is a group of one, where nothing syncs."""

    rank: int = 0
    world: int = 1
    sharded: bool = False  # the model's parameters are sharded over the group (FSDP)

    @property
    def leader(self) -> bool:
        return self.rank == 0

    def shard(self, model: nn.Module) -> Sync:
        """Shard ``model`` over the group with FSDP: each decoder layer (what the model says not to split), then the
        rest; returns this process's part marked sharded. Parameters on the CPU move to the device a layer at a
        time, so the whole model never has to fit one device."""
        from torch.distributed.fsdp import FSDPModule, fully_shard

        blocks = set(getattr(model, "_no_split_modules", None) or ())
        for module in [m for m in model.modules() if type(m).__name__ in blocks]:
            fully_shard(module)
        fully_shard(model)
        for module in model.modules():
            if isinstance(module, FSDPModule):
                # Summed, not averaged: each pass's loss is already divided by the whole step's answer tokens.
                module.set_gradient_divide_factor(1.0)
                module.set_force_sum_reduction_for_comms(True)  # gloo has no pre-multiplied sum
        return replace(self, sharded=True)

    def mine(self, passes: Iterable[list[int]]) -> Iterator[tuple[list[int], bool]]:
        """This process's share of a step's forward passes (every world-th, starting at its rank), each with
        whether it counts. Sharded, every pass gathers each layer's weights from all the processes, so all must
        run as many passes: one whose share is a pass short runs one more that must not count (the caller
        multiplies its loss by zero), so no process waits forever and no gradient changes."""
        passes = list(passes)
        for number, indices in enumerate(passes):
            if number % self.world == self.rank:
                yield indices, True
        short = len(passes) % self.world
        if self.sharded and short and self.rank >= short:
            yield passes[0], False

    def step_end(self, params: Sequence[nn.Parameter], figures: Sequence[float]) -> list[float]:
        """Sum the gradients (unless FSDP summed them already) and ``figures`` (the step's loss sums, token
        counts) over the group."""
        if self.world == 1:
            return list(figures)
        import torch.distributed as dist

        if not self.sharded:  # FSDP summed them in the backward passes
            for param in params:
                if param.grad is None:
                    param.grad = torch.zeros_like(param)
                dist.all_reduce(param.grad)
        totals = torch.tensor(list(figures), dtype=torch.float64)
        dist.all_reduce(totals)
        return totals.tolist()

    def agree(self, leader_says: bool) -> bool:
        """Rank 0's answer (to stop or not), for every process."""
        if self.world == 1:
            return leader_says
        import torch.distributed as dist

        flag = torch.tensor([1 if leader_says else 0])
        dist.broadcast(flag, src=0)
        return bool(flag.item())

    def gather_weights(self, model: nn.Module) -> dict[str, torch.Tensor]:
        """The sharded model's whole state on the CPU, for rank 0 (the others get an empty dict); every process
        must call it."""
        from torch.distributed.checkpoint.state_dict import get_model_state_dict

        return get_model_state_dict(model, options=_whole())

    def gather_optimizer(self, model: nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
        """The sharded optimizer's whole state for rank 0 in ``optimizer.state_dict()``'s format (parameters
        numbered, not named), so one process can load it; the others get an empty dict. Every process must call it."""
        from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict

        state = get_optimizer_state_dict(model, optimizer, options=_whole())
        if not self.leader:
            return {}
        number = {name: n for n, name in enumerate(_param_names(model, optimizer))}
        return _renamed(state, number)

    def scatter(
        self, model: nn.Module, optimizer: torch.optim.Optimizer, weights: dict[str, torch.Tensor], saved: dict
    ) -> None:
        """Load rank 0's whole ``weights`` and optimizer state (``optimizer.state_dict()``'s format) into every
        process's shards; every process must call it (the others' arguments are ignored)."""
        from torch.distributed.checkpoint.state_dict import set_model_state_dict, set_optimizer_state_dict

        # Not strict: a tied weight (the output layer) is saved once, under its parameter's name.
        options = _whole(broadcast_from_rank0=True, cpu_offload=False, strict=False)
        if self.leader:
            saved = _renamed(saved, dict(enumerate(_param_names(model, optimizer))))
        else:
            weights, saved = {}, {}
        set_model_state_dict(model, weights, options=options)
        set_optimizer_state_dict(model, optimizer, saved, options=options)


SINGLE = Sync()


def local_numel(model: nn.Module) -> int:
    """How many parameter values this process holds (its shards, when sharded)."""
    from torch.distributed.tensor import DTensor

    return sum((p.to_local() if isinstance(p, DTensor) else p).numel() for p in model.parameters())


def _whole(**overrides: bool) -> Any:
    from torch.distributed.checkpoint.state_dict import StateDictOptions

    return StateDictOptions(**{"full_state_dict": True, "cpu_offload": True, **overrides})


def _param_names(model: nn.Module, optimizer: torch.optim.Optimizer) -> list[str]:
    """The optimizer's parameters by name, in the order ``optimizer.state_dict()`` numbers them."""
    names = {id(param): name for name, param in model.named_parameters()}
    return [names[id(param)] for group in optimizer.param_groups for param in group["params"]]


def _renamed(state: dict[str, Any], keys: dict[Any, Any]) -> dict[str, Any]:
    """An optimizer state dict with each parameter's key (name or number) replaced by ``keys[key]``."""
    return {
        "state": {keys[key]: value for key, value in state["state"].items()},
        "param_groups": [
            {**group, "params": [keys[key] for key in group["params"]]} for group in state["param_groups"]
        ],
    }


def sync_from_environment() -> Sync:
    """The group torchrun started this process in (RANK, WORLD_SIZE), joined on gloo (CPU) or nccl (CUDA)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return SINGLE
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    rank = dist.get_rank()
    if torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", rank)))
    return Sync(rank=rank, world=world)
