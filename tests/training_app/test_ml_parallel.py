"""Data-parallel training on 2 CPU processes (gloo, started with torchrun): the same effective batch as one process,
so the same steps: losses and trained weights match a single-process fit within float rounding. LoRA keeps the
whole model in each process; a full fine-tune is sharded (FSDP)."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.training_app.conftest_ml import fresh_tiny_model, tiny_source, tiny_tokenizer
from training_app.ml.checkpoint import LoopOptions
from training_app.ml.config import TrainConfig
from training_app.ml.data import ChatExample
from training_app.ml.distributed import Sync
from training_app.ml.train import NullCallbacks, fit, prepare_model, train

pytestmark = pytest.mark.embedded_only

PAIRS = [ChatExample(prompt=f"What is {n} times {n}?", response=f"{n} times {n} is {n * n}.") for n in range(12)]
# Dropout off: each process draws its own dropout masks, so with dropout the runs match only on average.
CONFIG = TrainConfig(epochs=2, batch_size=4, grad_accum=2, learning_rate=5e-3, lora_r=4, lora_alpha=8, lora_dropout=0.0)
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]


class Losses(NullCallbacks):
    def __init__(self):
        self.losses = []

    def on_step(self, step, metrics):
        self.losses.append(metrics["loss"])


def test_two_gloo_processes_train_the_steps_one_process_trains(tmp_path):
    out = tmp_path / "rank0.json"
    done = subprocess.run(
        [*TORCHRUN, str(Path(__file__).with_name("parallel_fit.py")), str(out)],
        cwd=Path(__file__).parents[2], env={**_env(), "PYTHONPATH": str(Path(__file__).parents[2])},
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    parallel = json.loads(out.read_text())

    model, tokenizer = fresh_tiny_model()
    model = prepare_model(model, CONFIG)
    single = Losses()
    result = fit(model, tokenizer, PAIRS, [], CONFIG, single)

    assert len(parallel["losses"]) == len(single.losses) == 4  # 3 batches of 4 an epoch, 2 a step, 2 epochs
    assert parallel["losses"] == pytest.approx(single.losses, rel=1e-4)
    assert parallel["tokens"] == result.train_tokens  # every pair trained once per epoch, by one process or the other
    for name, param in model.named_parameters():
        if param.requires_grad:
            torch.testing.assert_close(torch.tensor(parallel["weights"][name]), param.detach(), rtol=1e-4, atol=1e-6)


def _env():
    import os

    return {key: value for key, value in os.environ.items() if key not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}


# --- a full fine-tune, sharded with FSDP

VALIDATION = [ChatExample(prompt=f"What is {n} plus {n}?", response=f"{n} plus {n} is {n + n}.") for n in range(4)]
# 3 pairs a step, one per forward pass (micro_batch 1): 3 passes do not share out evenly over 2 processes, so the
# second runs a pass that does not count in every step. The tiny model has no dropout (nor has a full fine-tune
# LoRA's), so the runs differ only by float rounding.
FULL = TrainConfig(method="full", epochs=2, batch_size=3, grad_accum=1, learning_rate=1e-3)
CHECKPOINT_STEP = 2


class Recorder(NullCallbacks):
    """Keeps each step's loss and grad norm, the logs, and a copy of the checkpoint of CHECKPOINT_STEP."""

    def __init__(self, keep):
        self.keep, self.steps, self.losses, self.grad_norms, self.logs = keep, [], [], [], []

    def on_step(self, step, metrics):
        assert isinstance(metrics["grad_norm"], float)  # what a run records, whatever holds the gradients
        self.steps.append(step)
        self.losses.append(metrics["loss"])
        self.grad_norms.append(metrics["grad_norm"])

    def on_log(self, line):
        self.logs.append(line)

    def checkpoint_due(self, step):
        return step == CHECKPOINT_STEP

    def on_checkpoint(self, step, directory):
        shutil.copytree(directory, self.keep)

    def figures(self):
        return {"steps": self.steps, "losses": self.losses, "grad_norms": self.grad_norms, "logs": self.logs}


def test_sharded_processes_run_as_many_passes_each_and_only_the_dealt_ones_count():
    passes = [[0], [1], [2]]
    shares = [list(Sync(rank=rank, world=2, sharded=True).mine(passes)) for rank in (0, 1)]
    assert shares == [[([0], True), ([2], True)], [([1], True), ([0], False)]]
    # a replicated model needs no extra pass: the gradients are summed once, after the step's passes
    assert list(Sync(rank=1, world=2).mine(passes)) == [([1], True)]


def test_a_sharded_full_fine_tune_trains_saves_and_resumes_as_one_process_does(tmp_path):
    # given a single-process full fine-tune of the tiny model (its checkpoint of step 2 kept)
    single = Recorder(tmp_path / "single-checkpoint")
    options = LoopOptions(micro_batch=1)
    single_result = train(tiny_source(), PAIRS, VALIDATION, FULL, tmp_path / "single", single, options=options)

    # when 2 gloo processes train it sharded, once from the start and once from the single process's checkpoint
    done = subprocess.run(
        [*TORCHRUN, str(Path(__file__).with_name("sharded_fit.py")), str(tmp_path)],
        cwd=Path(__file__).parents[2], env={**_env(), "PYTHONPATH": str(Path(__file__).parents[2])},
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    found = json.loads((tmp_path / "found.json").read_text())
    sharded, resumed = found["sharded"], found["resumed"]

    # then each process held half the weights
    for rank in (0, 1):
        held = json.loads((tmp_path / f"rank{rank}.json").read_text())
        assert held["local"] == pytest.approx(held["total"] / 2, rel=0.01)
    assert any(line.startswith("sharded over 2 processes (FSDP)") for line in sharded["logs"])
    # the steps were the single process's steps (float rounding apart: the sums run in another order)
    assert sharded["steps"] == single.steps == list(range(1, 9))  # 4 steps of 3 pairs an epoch, 2 epochs
    assert sharded["losses"] == pytest.approx(single.losses, rel=1e-4)
    assert sharded["grad_norms"] == pytest.approx(single.grad_norms, rel=1e-4)
    assert sharded["val_loss"] == pytest.approx(single_result.val_loss, rel=1e-4)
    assert sharded["tokens"] == single_result.train_tokens
    # the artifact has the single process's layout and weights, and answers alike
    assert sorted(p.name for p in (tmp_path / "sharded").iterdir()) == sorted(
        p.name for p in (tmp_path / "single").iterdir()
    )
    _assert_same_model(tmp_path / "sharded", tmp_path / "single")

    # a sharded run resumed from the single process's checkpoint goes on as the single process did
    assert resumed["steps"] == single.steps[CHECKPOINT_STEP:]
    assert resumed["losses"] == pytest.approx(single.losses[CHECKPOINT_STEP:], rel=1e-4)
    # and one process resumed from the sharded run's checkpoint does too
    again = Recorder(tmp_path / "unused")
    resume = LoopOptions(micro_batch=1, resume=tmp_path / "sharded-checkpoint")
    train(tiny_source(), PAIRS, VALIDATION, FULL, tmp_path / "again", again, options=resume)
    assert again.steps == single.steps[CHECKPOINT_STEP:]
    assert again.losses == pytest.approx(single.losses[CHECKPOINT_STEP:], rel=1e-4)


def _assert_same_model(trained, reference):
    from transformers import AutoModelForCausalLM

    first, second = (AutoModelForCausalLM.from_pretrained(path) for path in (trained, reference))
    prompt = tiny_tokenizer()("What is 7 times 7?", return_tensors="pt").input_ids
    with torch.no_grad():
        torch.testing.assert_close(first(prompt).logits, second(prompt).logits, rtol=1e-3, atol=1e-4)
        greedy = [m.generate(prompt, max_new_tokens=8, do_sample=False) for m in (first, second)]
    assert greedy[0].tolist() == greedy[1].tolist()
