"""Running a training run on a worker: claim, heartbeat, train, evaluate base and tuned, store the artifact.

Only Celery tasks reach this module; it is where the app meets training_app.ml (torch and friends).
"""

import functools
import json
import logging
import shutil
import socket
import tempfile
import threading
import time
import traceback
import zipfile
from collections import Counter, OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.files import File
from django.db import close_old_connections, connection, transaction
from django.utils import timezone

from datasets_app.blueprints.specs import MCQSpec, spec_or_none
from datasets_app.jobs.outbox import claim_queued, finish_running
from datasets_app.lint.validators import FormatProblem, validate_mcq
from datasets_app.models import Dataset
from training_app.checkpoints import (
    attempt_begin,
    attempt_end,
    attempt_retry,
    checkpoint_fetch,
    checkpoint_store,
    checkpoints_forget,
)
from training_app.ml.config import TrainConfig, is_adapter_method, is_quantized_method
from training_app.ml.data import ChatExample
from training_app.models import (
    DatasetVersion,
    EvalItem,
    PlaygroundRequest,
    PlaygroundStatus,
    RunLog,
    RunMetric,
    RunStatus,
    TrainingRun,
)
from training_app.preference_runs import (
    add_preference,
    chat,
    init_artifact,
    is_preference,
    load_starting_model,
    preference_scores,
    task_kind,
)
from training_app.signals import run_finished
from training_app.snapshots import SnapshotRow, snapshot_rows

logger = logging.getLogger(__name__)
HEARTBEAT_EVERY_S = 5.0
CANCEL_CHECK_EVERY_S = 1.0
EVAL_MAX_NEW_TOKENS = {"guardrail": 48, "mcq": 160, "general": 128}
PREFERENCE_METRICS = ("reward_margin", "reward_accuracy", "logp_chosen", "logp_rejected")  # per step, dpo and orpo


def model_spec(name: str) -> dict[str, Any]:
    return {**settings.BASE_MODELS[name], "name": name}


def base_model_dir(name: str) -> Path:
    from training_app.ml.registry import model_source_dir

    return model_source_dir(model_spec(name), Path(settings.MODEL_CACHE_DIR))


class RunCancelled(Exception):
    pass


class RunSuperseded(Exception):
    """The sweeper took the run from this attempt (its heartbeat had stopped) and queued it again: stop quietly."""


class Heartbeat(threading.Thread):
    """Keeps the run's heartbeat fresh and notices a cancel request, from its own thread and DB connection."""

    def __init__(self, run_id: int, attempt: int) -> None:
        super().__init__(daemon=True, name=f"heartbeat-{run_id}")
        self.run_id, self.attempt = run_id, attempt
        self.cancelled = threading.Event()
        self.done = threading.Event()

    def run(self) -> None:
        last_beat = 0.0
        try:
            while not self.done.wait(CANCEL_CHECK_EVERY_S):
                if time.monotonic() - last_beat >= HEARTBEAT_EVERY_S:
                    mine = TrainingRun.objects.filter(pk=self.run_id, attempt=self.attempt, status=RunStatus.RUNNING)
                    mine.update(heartbeat_at=timezone.now())  # a superseded attempt keeps no run alive
                    last_beat = time.monotonic()
                if TrainingRun.objects.filter(pk=self.run_id, cancel_requested=True).exists():
                    self.cancelled.set()
        finally:
            connection.close()

    def stop(self) -> None:
        self.done.set()
        self.join(timeout=10)


class RunRecorder:
    """training_app.ml callbacks that write progress, metrics and log lines to the database."""

    def __init__(self, run: TrainingRun, heartbeat: Heartbeat) -> None:
        self.run = run
        self.heartbeat = heartbeat
        self.started = time.monotonic()
        self.first_step: int | None = None
        self.last_checkpoint = (run.step, time.monotonic())

    def on_start(self, total_steps: int) -> None:
        self.started = time.monotonic()
        TrainingRun.objects.filter(pk=self.run.pk).update(
            total_steps=total_steps, phase="training", updated_at=timezone.now()
        )

    def on_step(self, step: int, metrics: dict[str, float]) -> None:
        now = timezone.now()
        if self.first_step is None:
            self.first_step, self.started = step - 1, time.monotonic()
        total = TrainingRun.objects.values_list("total_steps", flat=True).get(pk=self.run.pk) or step
        done = step - self.first_step
        eta = (time.monotonic() - self.started) / done * (total - step) if done else None
        updates = {"step": step, "eta_seconds": eta, "heartbeat_at": now, "updated_at": now}
        if not self._mine().update(**updates):
            raise RunSuperseded
        RunMetric.objects.create(
            run=self.run, step=step, epoch=metrics.get("epoch", 0), loss=metrics.get("loss"),
            learning_rate=metrics.get("learning_rate"), grad_norm=metrics.get("grad_norm"), tokens_per_s=metrics.get("tokens_per_s"),
            **{name: metrics.get(name) for name in PREFERENCE_METRICS},
        )  # fmt: skip
        TrainingRun.objects.filter(pk=self.run.pk, first_step_at__isnull=True).update(first_step_at=now)

    def _mine(self) -> Any:
        """The run's row while this attempt holds it: a superseded attempt must write nothing more."""
        return TrainingRun.objects.filter(pk=self.run.pk, attempt=self.run.attempt, status=RunStatus.RUNNING)

    def on_epoch(self, epoch: int, metrics: dict[str, float | None]) -> None:
        if metrics.get("val_loss") is not None:
            step = TrainingRun.objects.values_list("step", flat=True).get(pk=self.run.pk)
            RunMetric.objects.create(run=self.run, step=step, epoch=epoch, val_loss=metrics["val_loss"])

    def on_log(self, line: str) -> None:
        log(self.run, line)

    def should_stop(self) -> bool:
        return self.heartbeat.cancelled.is_set()

    def checkpoint_due(self, step: int) -> bool:
        last_step, last_time = self.last_checkpoint
        every_steps, every_s = settings.RUN_CHECKPOINT_EVERY_STEPS, settings.RUN_CHECKPOINT_EVERY_S
        return (every_steps > 0 and step - last_step >= every_steps) or time.monotonic() - last_time >= every_s

    def on_checkpoint(self, step: int, directory: Path) -> None:
        if not checkpoint_store(self.run.pk, self.run.attempt, step, directory):
            raise RunSuperseded
        self.last_checkpoint = (step, time.monotonic())
        log(self.run, f"checkpoint of step {step} saved")


def log(run: TrainingRun, line: str) -> None:
    logger.info("run %s: %s", run.pk, line)
    RunLog.objects.create(run=run, line=line[:2000])


def _claim(run_id: int) -> TrainingRun | None:
    with transaction.atomic():
        run = TrainingRun.objects.select_for_update().filter(pk=run_id).first()
        if run is None or run.status != RunStatus.QUEUED:
            return None  # redelivered, cancelled before it started, or already done
        now = timezone.now()
        run.status, run.started_at, run.heartbeat_at = RunStatus.RUNNING, run.started_at or now, now
        run.worker, run.phase = socket.gethostname(), "loading"
        attempt_begin(run, run.worker)
        fields = ["status", "started_at", "heartbeat_at", "worker", "phase", "attempt", "attempts", "updated_at"]
        run.save(update_fields=fields)
        return run


def _finish(run: TrainingRun, status: str, **fields: Any) -> None:
    """End the run, if this attempt still holds it; its checkpoints go."""
    now = timezone.now()
    with transaction.atomic():
        locked = TrainingRun.objects.select_for_update().filter(pk=run.pk, attempt=run.attempt).first()
        if locked is None or locked.finished:
            return
        attempt_end(locked, outcome=status, reason=fields.get("error", ""))
        checkpoints_forget(locked)
        TrainingRun.objects.filter(pk=run.pk).update(
            status=status, finished_at=now, heartbeat_at=now, updated_at=now, phase="", attempts=locked.attempts,
            checkpoints=[], **fields,
        )  # fmt: skip
    for receiver, outcome in run_finished.send_robust(TrainingRun, run_id=run.pk, status=status):
        if isinstance(outcome, Exception):
            logger.error("run %s: %s failed on its end", run.pk, receiver, exc_info=outcome)


def run_execute(*, run_id: int) -> None:
    """Run a queued training run once, start to finish; every outcome ends in a final status."""
    run = _claim(run_id)
    if run is None:
        return
    heartbeat = Heartbeat(run.pk, run.attempt)
    heartbeat.start()
    workdir = Path(tempfile.mkdtemp(prefix=f"instructory-run-{run.pk}-"))
    try:
        _execute(run, heartbeat, workdir)
    except RunSuperseded:
        logger.warning("run %s attempt %s was given to another worker; this one stops", run.pk, run.attempt)
    except RunCancelled:
        log(run, "cancelled on request")
        _finish(run, RunStatus.CANCELLED)
    except Exception as error:
        logger.exception("run %s failed", run.pk)
        log(run, f"failed: {error}")
        _finish(
            run,
            RunStatus.FAILED,
            error=f"{type(error).__name__}: {error}"[:2000],
            traceback_tail=traceback.format_exc()[-4000:],
        )
    finally:
        heartbeat.stop()
        shutil.rmtree(workdir, ignore_errors=True)
        close_old_connections()


def _set_phase(run: TrainingRun, phase: str, heartbeat: Heartbeat) -> None:
    if heartbeat.cancelled.is_set():
        raise RunCancelled
    TrainingRun.objects.filter(pk=run.pk).update(phase=phase, updated_at=timezone.now())
    log(run, phase)


def _execute(run: TrainingRun, heartbeat: Heartbeat, workdir: Path) -> None:
    from training_app.ml.registry import pick_device

    snapshot = run.snapshot
    preference = is_preference(run)
    rows = snapshot_rows(snapshot)
    train_rows = [row for row in rows if row.split == "train"]
    val_rows = [row for row in rows if row.split == "validation"]
    source, eval_rows = evaluation_rows(rows)
    log(
        run,
        f"snapshot v{snapshot.number} ({snapshot.content_hash[:12]}): {len(train_rows)} train, {len(val_rows)} validation, "
        f"{snapshot.n_eval} evaluation pairs; evaluating on the {EVALUATED_ON[source]}",
    )
    _set_phase(run, "preparing the base model", heartbeat)
    model_dir = base_model_dir(run.base_model)
    init_dir = init_artifact(run)
    if init_dir is not None:
        log(run, f"starting from run {run.init_run_id}'s model (its adapter merged, a new one trained over it)")
    device, _ = pick_device()
    TrainingRun.objects.filter(pk=run.pk).update(device=device)
    config = TrainConfig.from_dict({**run.hyperparameters, "method": run.method, "objective": run.objective})

    _set_phase(run, "training", heartbeat)
    out_dir = workdir / "model"
    inputs = TrainInputs(
        model_dir,
        [chat(row, preference=preference) for row in train_rows],
        [chat(row, preference=preference) for row in val_rows],
        config,
        out_dir,
        init_artifact=init_dir,
    )
    result = _train_retrying(run, heartbeat, inputs, workdir)
    if result.status == "cancelled":
        raise RunCancelled
    summary = {
        "train_tokens": result.train_tokens, "truncated": result.truncated_count, "tokens_per_s": round(result.tokens_per_s, 1),
        "final_loss": result.final_loss, "val_loss": result.val_loss, "steps": result.steps, "train_seconds": round(result.train_seconds, 1),
    }  # fmt: skip
    TrainingRun.objects.filter(pk=run.pk).update(summary=summary)
    log(
        run,
        f"trained {result.steps} steps at {result.tokens_per_s:.0f} tokens/s; {result.truncated_count} pairs truncated",
    )

    # The starting model is evaluated after training, not before, so training starts seconds after queueing.
    kind = task_kind(snapshot.kind, eval_rows)
    validate = mcq_validator(snapshot.dataset)
    _set_phase(run, "evaluating the base model" if init_dir is None else "evaluating the starting model", heartbeat)
    model, tokenizer = load_starting_model(model_dir, init_dir, quantized=is_quantized_method(run.method))
    before = _evaluate(model, tokenizer, eval_rows, kind, config.max_seq_len, validate)
    before_prefs = preference_scores(model, tokenizer, eval_rows, config.max_seq_len) if preference else None
    del model

    _set_phase(run, "evaluating the fine-tuned model", heartbeat)
    tuned, tuned_tokenizer = _load_tuned(model_dir, out_dir, run.method)
    after = _evaluate(tuned, tuned_tokenizer, eval_rows, kind, config.max_seq_len, validate)
    after_prefs = preference_scores(tuned, tuned_tokenizer, eval_rows, config.max_seq_len) if preference else None
    del tuned
    if before_prefs is not None and after_prefs is not None:
        add_preference(before, before_prefs)
        add_preference(after, after_prefs)
    _store_eval_items(run, eval_rows, before, after, kind=kind, prefs=(before_prefs, after_prefs))

    _set_phase(run, "saving the artifact", heartbeat)
    artifact = _zip(run, out_dir, workdir / "artifact.zip")
    with artifact.open("rb") as handle:
        run.artifact.save(f"run-{run.pk}.zip", File(handle), save=False)
    evaluation = {"source": source, "before": _metrics_only(before), "after": _metrics_only(after)}
    _finish(run, RunStatus.SUCCEEDED, artifact=run.artifact.name, evaluation=evaluation, step=result.steps)
    log(run, "succeeded")


@dataclass
class TrainInputs:
    """What a run trains on, wherever the training runs (this process, or several started for it)."""

    source: Path
    train_set: list[ChatExample]
    val_set: list[ChatExample]
    config: TrainConfig
    out_dir: Path
    init_artifact: Path | None = None


def _train(run: TrainingRun, heartbeat: Heartbeat, inputs: TrainInputs, options: Any, workdir: Path) -> Any:
    from training_app.ml.train import train
    from training_app.parallel import train_in_processes, train_processes

    processes = train_processes()
    if processes > 1:
        log(run, f"training with {processes} processes (data parallel); the first one reports")
        return train_in_processes(run.pk, inputs, options, workdir, processes)
    return train(
        inputs.source, inputs.train_set, inputs.val_set, inputs.config, inputs.out_dir, RunRecorder(run, heartbeat),
        init_artifact=inputs.init_artifact, options=options,
    )  # fmt: skip


def _train_retrying(run: TrainingRun, heartbeat: Heartbeat, inputs: TrainInputs, workdir: Path) -> Any:
    """Train from the run's newest checkpoint (if any); out of memory, again from the newest checkpoint with half
    the examples per forward pass (the same steps: the effective batch and the results do not change), down to 1."""
    from training_app.ml.checkpoint import LoopOptions
    from training_app.ml.memory import is_out_of_memory

    guard = memory_guard()
    while True:
        resume = _resume_point(run, workdir / f"resume-{len(run.attempts)}")
        options = LoopOptions(resume=resume, micro_batch=run.micro_batch, memory_check=guard)
        try:
            return _train(run, heartbeat, inputs, options, workdir)
        except Exception as error:
            if not is_out_of_memory(error):
                raise
            _halve_micro_batch(run, inputs.config, str(error))


def memory_guard() -> Any:
    """The memory check of this worker's training processes (its RSS cap; the injected fault in tests)."""
    from training_app.ml.memory import MemoryGuard

    return MemoryGuard(max_rss_mb=settings.RUN_MAX_RSS_MB, fail_above=settings.RUN_FAULT_OOM_ABOVE)


def _resume_point(run: TrainingRun, folder: Path) -> Path | None:
    """Fetch the run's newest checkpoint into ``folder``; drop the metrics recorded after it (they are redone)."""
    step = checkpoint_fetch(run.pk, folder)
    if step is None and run.attempt == 1 and len(run.attempts) == 1:
        return None
    RunMetric.objects.filter(run=run, step__gt=step or 0).delete()
    run.step = step or 0
    run.attempts = [*run.attempts[:-1], {**run.attempts[-1], "from_step": run.step}]
    TrainingRun.objects.filter(pk=run.pk).update(step=run.step, attempts=run.attempts)
    if step is None:
        log(run, f"attempt {run.attempt} starts from the first step: no checkpoint was saved before")
        return None
    log(run, f"attempt {run.attempt} resumes from the checkpoint of step {step}")
    return folder


def _halve_micro_batch(run: TrainingRun, config: TrainConfig, error: str) -> None:
    current = run.micro_batch or config.batch_size
    if current <= 1:
        raise MemoryError(
            f"out of memory with one example per forward pass ({error}): the run does not fit on this worker. "
            "Lower max_seq_len, train with LoRA or QLoRA (the base in 4-bit), or use a worker with more memory."
        )
    smaller = max(1, current // 2)
    with transaction.atomic():
        locked = TrainingRun.objects.select_for_update().get(pk=run.pk)
        step = locked.checkpoints[-1]["step"] if locked.checkpoints else 0
        attempt_retry(locked, reason=f"out of memory at {current} examples per forward pass: {error}", step=locked.step)
        locked.micro_batch = smaller
        locked.save(update_fields=["attempts", "micro_batch", "updated_at"])
    run.attempts, run.micro_batch = locked.attempts, smaller
    log(
        run,
        f"out of memory at {current} examples per forward pass ({error}); retrying from step {step} with {smaller} "
        f"per pass, so each step accumulates {config.batch_size * config.grad_accum // smaller} passes: the effective "
        f"batch ({config.batch_size * config.grad_accum}) and the results stay the same",
    )


EVALUATED_ON = {"eval_set": "evaluation set", "validation": "validation split (the snapshot has no evaluation set)"}


def evaluation_rows(rows: list[SnapshotRow]) -> tuple[str, list[SnapshotRow]]:
    """What a run is scored on, and its name: the snapshot's evaluation set, or without one its validation split."""
    evaluation = [row for row in rows if row.split == "eval"]
    if evaluation:
        return "eval_set", evaluation
    return "validation", [row for row in rows if row.split == "validation"]


def _load_tuned(source: Path, out_dir: Path, method: str):  # type: ignore[no-untyped-def]
    """A run's model as it was trained: its adapter over the base (in 4-bit for qlora), or its own weights."""
    from training_app.ml.registry import load_model

    if is_adapter_method(method):
        return load_model(source, adapter_dir=out_dir, quantized=is_quantized_method(method))
    return load_model(out_dir)


def _chat(row: SnapshotRow) -> ChatExample:
    return chat(row)


def mcq_validator(dataset: Dataset) -> Callable[[str], list[FormatProblem]]:
    """Checks a generated question against the dataset's MCQ template, or the demo format without one."""
    template = dataset.template
    spec = spec_or_none(template.kind, template.spec) if template is not None else None
    return partial(validate_mcq, spec=spec if isinstance(spec, MCQSpec) else None)


def _evaluate(model, tokenizer, rows: list[SnapshotRow], kind: str, max_len: int, validate) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    from training_app.ml.evaluate import evaluate

    return evaluate(
        model, tokenizer, [_chat(row) for row in rows], kind if kind in ("guardrail", "mcq") else "general", max_len,
        blocked_flags=[row.blocked for row in rows] if kind == "guardrail" else None,
        validate=validate if kind == "mcq" else None, max_new_tokens=EVAL_MAX_NEW_TOKENS.get(kind, 128),
    )  # fmt: skip


def _metrics_only(evaluation: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in evaluation.items() if key != "items"}


def _item_ok(item: dict[str, Any]) -> bool | None:
    if "refused" in item:
        return item["refused"] == item["blocked"]
    if "problems" in item:
        return not item["problems"]
    return bool(item.get("exact_match"))


def _store_eval_items(
    run: TrainingRun, rows: list[SnapshotRow], before: dict, after: dict, *, kind: str,
    prefs: tuple[dict | None, dict | None] = (None, None),
) -> None:  # fmt: skip
    none = [None] * len(rows)
    before_prefers = prefs[0]["correct"] if prefs[0] is not None else none
    after_prefers = prefs[1]["correct"] if prefs[1] is not None else none
    EvalItem.objects.bulk_create(
        EvalItem(
            run=run,
            example_id=row.ref if _exists(row.ref) else None,
            prompt=row.prompt,
            reference=row.response,
            rejected=row.rejected,
            blocked=row.blocked if kind == "guardrail" else None,
            before_output=b["output"],
            after_output=a["output"],
            before_ok=_item_ok(b),
            after_ok=_item_ok(a),
            before_prefers_chosen=bp,
            after_prefers_chosen=ap,
        )  # fmt: skip
        for row, b, a, bp, ap in zip(rows, before["items"], after["items"], before_prefers, after_prefers, strict=True)
    )


def _exists(ref: int | None) -> bool:
    from datasets_app.models import Example

    return ref is not None and Example.objects.filter(pk=ref).exists()


def _zip(run: TrainingRun, out_dir: Path, target: Path) -> Path:
    """The model files plus the run's config and the snapshot's hash, so the artifact explains itself."""
    meta = {
        "run": run.pk, "base_model": run.base_model, "method": run.method, "objective": run.objective,
        "init_run": run.init_run_id, "hyperparameters": run.hyperparameters,
        "snapshot": {"dataset": run.snapshot.dataset_id, "number": run.snapshot.number, "content_hash": run.snapshot.content_hash},
    }  # fmt: skip
    (out_dir / "instructory_run.json").write_text(json.dumps(meta, indent=2))
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(out_dir.rglob("*")):
            if path.is_file():
                archive.write(path, path.relative_to(out_dir))
    return target


# --- playground


_loaded: OrderedDict[str, tuple[Any, Any]] = OrderedDict()


def _cached_model(key: str, loader) -> tuple[Any, Any]:  # type: ignore[no-untyped-def]
    """Keep the WORKER_MODELS_LOADED most recently used models in this worker process (a cache: any other worker
    loads them from the model cache and storage)."""
    if key in _loaded:
        _loaded.move_to_end(key)
        return _loaded[key]
    while _loaded and len(_loaded) >= max(settings.WORKER_MODELS_LOADED, 1):
        _loaded.popitem(last=False)
    _loaded[key] = loader()
    return _loaded[key]


def loaded_base_model(name: str, *, quantized: bool = False) -> tuple[Any, Any]:
    """The registry's base model ``name`` (``quantized``: in 4-bit, as a qlora run trains over it) and its
    tokenizer, loaded once per worker process."""
    from training_app.ml.registry import load_model

    source = base_model_dir(name)
    key = f"base-4bit:{name}" if quantized else f"base:{name}"
    return _cached_model(key, lambda: load_model(source, quantized=quantized))


def tuned_model_dir(run: TrainingRun) -> Path:
    """The run's artifact unpacked in this machine's model cache (fetched from storage once)."""
    if not run.artifact:  # never trained, or its model was deleted: a copy left in this cache must not answer
        raise FileNotFoundError(f"run {run.pk} has no trained model (none was stored, or it was deleted)")
    # The creation time keeps runs of different databases that share one model cache apart.
    target = Path(settings.MODEL_CACHE_DIR) / "runs" / f"run-{run.pk}-{run.created_at:%Y%m%d%H%M%S%f}"
    if not (target / "instructory_run.json").exists():
        staging = Path(tempfile.mkdtemp(dir=Path(settings.MODEL_CACHE_DIR)))
        with run.artifact.open("rb") as handle, zipfile.ZipFile(handle) as archive:
            archive.extractall(staging)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(target, ignore_errors=True)
        staging.rename(target)
    return target


@functools.lru_cache(maxsize=64)  # snapshots never change
def _usual_system_prompt_of(snapshot_id: int) -> str:
    rows = snapshot_rows(DatasetVersion.objects.get(pk=snapshot_id))
    counts = Counter(row.system for row in rows if row.split == "train")
    return counts.most_common(1)[0][0] if counts else ""


def usual_system_prompt(run: TrainingRun) -> str:
    """The system prompt most training pairs had: the playground (and blind judging) asks as the model was taught."""
    return _usual_system_prompt_of(run.snapshot_id)


def tuned_model(run: TrainingRun) -> tuple[Any, Any]:
    """The run's fine-tuned model and its tokenizer, loaded once per worker process."""
    source = base_model_dir(run.base_model)
    tuned_dir = tuned_model_dir(run)
    return _cached_model(f"run:{tuned_dir.name}", lambda: _load_tuned(source, tuned_dir, run.method))


def answer_prompt(model: tuple[Any, Any], prompt: str, *, system: str, max_new_tokens: int) -> str:
    """One greedy (reproducible) answer of a loaded model and tokenizer to a single-turn prompt."""
    from training_app.ml.generate import generate

    return generate(*model, [ChatExample(prompt=prompt, response="", system=system)], max_new_tokens)[0]


def playground_claim(request_id: int) -> PlaygroundRequest | None:
    """The queued request, now marked running; None when another delivery of its task already took it."""
    return claim_queued(PlaygroundRequest, request_id, queued=PlaygroundStatus.QUEUED, running=PlaygroundStatus.RUNNING)


def playground_finish(request: PlaygroundRequest, *, status: str, **fields: str) -> bool:
    """Record the outcome, only on a request still running: one the sweeper failed meanwhile stays failed."""
    finished = finish_running(request, running=PlaygroundStatus.RUNNING, status=status, **fields)
    if not finished:
        logger.warning("playground request %s was no longer running; its late outcome is dropped", request.pk)
    return finished


def playground_answer(*, request_id: int) -> None:
    """Answer a playground prompt with the base and the fine-tuned model, greedily (reproducible); at most once."""
    request = playground_claim(request_id)
    if request is None:
        return
    run = request.run
    try:
        base = loaded_base_model(run.base_model, quantized=is_quantized_method(run.method))
        tuned = tuned_model(run)
        system, limit = usual_system_prompt(run), request.max_new_tokens
        base_output = answer_prompt(base, request.prompt, system=system, max_new_tokens=limit)
        fine_tuned_output = answer_prompt(tuned, request.prompt, system=system, max_new_tokens=limit)
    except Exception as error:
        logger.exception("playground request %s failed", request.pk)
        message = f"the models could not answer ({type(error).__name__}): {error}"[:2000]
        playground_finish(request, status=PlaygroundStatus.FAILED, error=message)
    else:
        playground_finish(
            request, status=PlaygroundStatus.SUCCEEDED, base_output=base_output, fine_tuned_output=fine_tuned_output
        )
