"""Running out of memory, told apart from other errors: CUDA's, the CPU allocator's, or a cap on the process's
resident memory (a CPU worker shares its machine; past the cap it stops before the kernel kills it)."""

from __future__ import annotations

import os

import torch

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
_CPU_MESSAGES = ("can't allocate memory", "not enough memory", "out of memory")


class OutOfMemory(RuntimeError):
    """A forward or backward pass needed more memory than it may use."""


def is_out_of_memory(error: BaseException) -> bool:
    if isinstance(error, (OutOfMemory, MemoryError, torch.OutOfMemoryError)):
        return True
    return isinstance(error, RuntimeError) and any(text in str(error) for text in _CPU_MESSAGES)


def rss_mb() -> float:
    """This process's resident memory now, in MiB (Linux; 0 where unknown)."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * _PAGE / 2**20
    except (OSError, IndexError, ValueError):
        return 0.0


class MemoryGuard:
    """Called after each forward pass with its number of examples: raises OutOfMemory past the resident memory cap
    (``max_rss_mb``, 0: none), or, to test the retry, for any pass of more than ``fail_above`` examples."""

    def __init__(self, *, max_rss_mb: int = 0, fail_above: int = 0) -> None:
        self.max_rss_mb, self.fail_above = max_rss_mb, fail_above

    def __call__(self, examples: int) -> None:
        if self.fail_above and examples > self.fail_above:
            raise OutOfMemory(f"a forward pass of {examples} examples ran out of memory (injected fault)")
        if self.max_rss_mb and (used := rss_mb()) > self.max_rss_mb:
            raise OutOfMemory(f"the worker used {used:.0f} MiB, over its cap of {self.max_rss_mb} MiB")
