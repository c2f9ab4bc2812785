"""A run trained by several processes at once (data parallel): the worker that claimed the run starts them with
torchrun and waits; each process runs this module. Rank 0 records progress, checkpoints and the artifact exactly as
a single process does; the worker then evaluates and stores the artifact as usual.

    python -m torch.distributed.run --standalone --nproc_per_node N -m training_app.parallel SPEC.json
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

from django.conf import settings

OUTPUT_TAIL = 4000


def train_processes() -> int:
    """How many processes train a run on this worker: INSTRUCTORY_TRAIN_PROCESSES, at most one per GPU on a CUDA
    worker (NCCL refuses two processes on one device); 0: one per GPU."""
    import torch

    gpus = torch.cuda.device_count()
    if settings.TRAIN_PROCESSES > 0:
        return min(settings.TRAIN_PROCESSES, gpus) if gpus else settings.TRAIN_PROCESSES
    return max(1, gpus)


def train_in_processes(run_id: int, inputs: Any, options: Any, workdir: Path, processes: int) -> Any:
    """Train with ``processes`` processes; the TrainResult of rank 0, or its error raised here again."""
    from training_app.ml.train import TrainResult

    spec = workdir / "parallel-spec.json"
    outcome = workdir / "parallel-outcome.json"
    outcome.unlink(missing_ok=True)
    spec.write_text(json.dumps(_spec(run_id, inputs, options, outcome)))
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}"]
    done = subprocess.run(  # noqa: S603 (our own interpreter and module, a file we wrote)
        [*command, "-m", "training_app.parallel", str(spec)],
        cwd=settings.BASE_DIR, env={**os.environ, "OMP_NUM_THREADS": str(_threads(processes))},
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if not outcome.exists():
        tail = (done.stdout + done.stderr)[-OUTPUT_TAIL:]
        raise RuntimeError(f"the training processes ended (exit {done.returncode}) without a result:\n{tail}")
    found = json.loads(outcome.read_text())
    if "error" in found:
        raise _error(found)
    result = found["result"]
    return TrainResult(**{**result, "out_dir": Path(result["out_dir"]) if result["out_dir"] else None})


def _threads(processes: int) -> int:
    return max(1, len(os.sched_getaffinity(0)) // processes) if hasattr(os, "sched_getaffinity") else 1


def _spec(run_id: int, inputs: Any, options: Any, outcome: Path) -> dict[str, Any]:
    return {
        "run": run_id,
        "source": str(inputs.source),
        "train": [asdict(example) for example in inputs.train_set],
        "validation": [asdict(example) for example in inputs.val_set],
        "config": inputs.config.to_dict(),
        "out_dir": str(inputs.out_dir),
        "init_artifact": str(inputs.init_artifact) if inputs.init_artifact else None,
        "resume": str(options.resume) if options.resume else None,
        "micro_batch": options.micro_batch,
        "outcome": str(outcome),
    }


def _error(found: dict[str, Any]) -> Exception:
    from training_app.execution import RunSuperseded
    from training_app.ml.memory import OutOfMemory

    if found.get("superseded"):
        return RunSuperseded()
    if found.get("out_of_memory"):
        return OutOfMemory(found["error"])
    return RuntimeError(found["error"])


# --- in each training process


def _rank_main(spec_path: str) -> None:
    import django

    django.setup()
    import torch

    from training_app.ml.distributed import sync_from_environment

    spec = json.loads(Path(spec_path).read_text())
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    sync = sync_from_environment()
    try:
        _rank_train(spec, sync)
    finally:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()


def _rank_train(spec: dict[str, Any], sync: Any) -> None:
    from training_app.execution import Heartbeat, RunRecorder, RunSuperseded, memory_guard
    from training_app.ml.checkpoint import LoopOptions
    from training_app.ml.config import TrainConfig
    from training_app.ml.data import ChatExample
    from training_app.ml.memory import is_out_of_memory
    from training_app.ml.train import NullCallbacks, train
    from training_app.models import TrainingRun

    run = TrainingRun.objects.get(pk=spec["run"])
    heartbeat = Heartbeat(run.pk, run.attempt) if sync.leader else None
    callbacks = RunRecorder(run, heartbeat) if heartbeat else NullCallbacks()
    guard = memory_guard()
    resume = Path(spec["resume"]) if spec["resume"] else None
    options = LoopOptions(resume=resume, micro_batch=spec["micro_batch"], memory_check=guard, sync=sync)
    if heartbeat:
        heartbeat.start()
    outcome: dict[str, Any] = {"error": "the training process stopped before it ended"}
    try:
        result = train(
            Path(spec["source"]), [ChatExample(**e) for e in spec["train"]],
            [ChatExample(**e) for e in spec["validation"]], TrainConfig.from_dict(spec["config"]),
            Path(spec["out_dir"]), callbacks,
            init_artifact=Path(spec["init_artifact"]) if spec["init_artifact"] else None, options=options,
        )  # fmt: skip
        outcome = {"result": result.to_dict()}
    except Exception as error:
        outcome = {"error": f"{type(error).__name__}: {error}", "out_of_memory": is_out_of_memory(error)}
        outcome["superseded"] = isinstance(error, RunSuperseded)
        raise
    finally:
        if heartbeat:
            heartbeat.stop()
            Path(spec["outcome"]).write_text(json.dumps(outcome))


if __name__ == "__main__":
    _rank_main(sys.argv[1])
