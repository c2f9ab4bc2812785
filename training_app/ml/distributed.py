"""Data-parallel training over several processes (GPUs, or CPU processes on gloo), started by torchrun.

Every process holds the whole model and the whole (seeded) data order; each optimizer step's forward passes are
dealt out among them, every process backpropagates its share scaled by the step's total, and the gradients are
summed across processes before the step: the same step a single process takes, in pieces. Rank 0 alone reports
(metrics, logs, checkpoints, the artifact); a cancel it sees reaches the others at the next step.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class Sync:
    """One process's part in a group of ``world`` processes; the default is a group of one, where nothing syncs."""

    rank: int = 0
    world: int = 1

    @property
    def leader(self) -> bool:
        return self.rank == 0

    def mine(self, passes: Iterable[list[int]]) -> Iterator[list[int]]:
        """This process's share of a step's forward passes (every world-th, starting at its rank)."""
        for number, indices in enumerate(passes):
            if number % self.world == self.rank:
                yield indices

    def step_end(self, params: Sequence[nn.Parameter], figures: Sequence[float]) -> list[float]:
        """Sum the gradients and ``figures`` (the step's loss sums, token counts) over the group."""
        if self.world == 1:
            return list(figures)
        import torch.distributed as dist

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


SINGLE = Sync()


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
