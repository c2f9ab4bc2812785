"""What lets a run outlive its worker: its checkpoints in storage (the last two, any worker resumes from the newest)
and its attempts (each claim by a worker, with how it ended)."""

from __future__ import annotations

import logging
from datetime import datetime
from pathlib import Path
from typing import Any

from django.core.files import File
from django.core.files.storage import default_storage
from django.db import transaction
from django.utils import timezone

from training_app.models import RunStatus, TrainingRun

logger = logging.getLogger(__name__)

FOLDER = "checkpoints"
KEEP = 2
FILE = "checkpoint.pt"  # training_app.ml.checkpoint.FILE, without importing torch here


def checkpoint_store(run_id: int, attempt: int, step: int, directory: Path) -> bool:
    """Save a checkpoint to storage and record it on the run, keeping the last KEEP; False (and nothing kept) when
    the attempt no longer holds the run (the sweeper gave it to another worker)."""
    with (Path(directory) / FILE).open("rb") as handle:
        name = default_storage.save(f"{FOLDER}/run-{run_id}/attempt-{attempt}-step-{step}.pt", File(handle))
    with transaction.atomic():
        run = TrainingRun.objects.select_for_update().filter(pk=run_id, attempt=attempt, status=RunStatus.RUNNING)
        locked = run.first()
        if locked is None:
            default_storage.delete(name)
            return False
        kept = [*locked.checkpoints, {"step": step, "file": name}]
        dropped, locked.checkpoints = kept[:-KEEP], kept[-KEEP:]
        locked.save(update_fields=["checkpoints", "updated_at"])
        _delete_on_commit(dropped)
    return True


def checkpoint_fetch(run_id: int, target: Path) -> int | None:
    """Copy the run's newest checkpoint into ``target`` (a folder); its step, or None when it has none."""
    checkpoints = TrainingRun.objects.values_list("checkpoints", flat=True).get(pk=run_id)
    if not checkpoints:
        return None
    newest = checkpoints[-1]
    target.mkdir(parents=True, exist_ok=True)
    with default_storage.open(newest["file"], "rb") as source, (target / FILE).open("wb") as copy:
        for chunk in iter(lambda: source.read(1 << 20), b""):
            copy.write(chunk)
    return int(newest["step"])


def checkpoints_forget(run: TrainingRun) -> None:
    """Inside a transaction that ends the run: its checkpoints leave storage once that commits."""
    _delete_on_commit(run.checkpoints)
    run.checkpoints = []


def _delete_on_commit(checkpoints: list[dict[str, Any]]) -> None:
    names = [checkpoint["file"] for checkpoint in checkpoints]
    transaction.on_commit(lambda: [default_storage.delete(name) for name in names])


def attempt_begin(run: TrainingRun, worker: str) -> None:
    """Record a worker's claim of the run as a new attempt (the caller saves)."""
    run.attempt += 1
    entry = {"number": run.attempt, "worker": worker, "started_at": timezone.now().isoformat(), "from_step": run.step}
    run.attempts = [*run.attempts, entry]


def attempt_retry(run: TrainingRun, *, reason: str, step: int) -> None:
    """End the current entry and open another for the same claim, on the same worker (an out-of-memory retry)."""
    attempt_end(run, outcome="out of memory", reason=reason, step=step)
    entry = {**run.attempts[-1], "started_at": timezone.now().isoformat(), "from_step": step}
    for ended in ("ended_at", "to_step", "outcome", "reason"):
        entry.pop(ended, None)
    run.attempts = [*run.attempts, entry]


def attempt_end(run: TrainingRun, *, outcome: str, reason: str = "", step: int | None = None) -> None:
    """Close the current attempt's entry with how it ended (the caller saves)."""
    if not run.attempts or "ended_at" in run.attempts[-1]:
        return
    last = {**run.attempts[-1], "ended_at": timezone.now().isoformat(), "outcome": outcome}
    last["to_step"] = run.step if step is None else step
    if reason:
        last["reason"] = reason
    run.attempts = [*run.attempts[:-1], last]


def attempts_text(run: TrainingRun) -> str:
    """Every attempt in one line each, for an error message."""
    return "; ".join(
        f"attempt {a['number']} on {a.get('worker') or 'a worker'}: steps {a.get('from_step', 0)} to "
        f"{a.get('to_step', '?')}, {a.get('reason') or a.get('outcome', 'running')}"
        for a in run.attempts
    )


def stray_checkpoints_sweep(*, now: datetime | None = None) -> int:
    """Delete checkpoints and merged exports that nothing names, once an hour old: a worker killed while saving one
    left it behind. Returns how many."""
    from datasets_app.jobs.services import stray_files_delete
    from datasets_app.models import Job, JobStatus
    from training_app.exports import EXPORTS

    checkpoints = {c["file"] for row in TrainingRun.objects.exclude(checkpoints=[]).values_list("checkpoints", flat=True)
                   for c in row}  # fmt: skip
    exports = Job.objects.filter(kind=Job.Kind.EXPORT, status=JobStatus.SUCCEEDED).values_list("result", flat=True)
    built = {result.get("file") for result in exports if result.get("file")}
    return stray_files_delete(default_storage, FOLDER, checkpoints, now=now) + stray_files_delete(
        default_storage, EXPORTS, built, now=now
    )
