"""Data-parallel training on 2 CPU processes (gloo, started with torchrun): the same effective batch as one process,
so the same steps: losses and trained weights match a single-process fit within float rounding."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.training_app.conftest_ml import fresh_tiny_model
from training_app.ml.config import TrainConfig
from training_app.ml.data import ChatExample
from training_app.ml.train import NullCallbacks, fit, prepare_model

pytestmark = pytest.mark.embedded_only

PAIRS = [ChatExample(prompt=f"What is {n} times {n}?", response=f"{n} times {n} is {n * n}.") for n in range(12)]
# Dropout off: each process draws its own dropout masks, so with dropout the runs match only on average.
CONFIG = TrainConfig(epochs=2, batch_size=4, grad_accum=2, learning_rate=5e-3, lora_r=4, lora_alpha=8, lora_dropout=0.0)


class Losses(NullCallbacks):
    def __init__(self):
        self.losses = []

    def on_step(self, step, metrics):
        self.losses.append(metrics["loss"])


def test_two_gloo_processes_train_the_steps_one_process_trains(tmp_path):
    out = tmp_path / "rank0.json"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    done = subprocess.run(
        [*command, str(Path(__file__).with_name("parallel_fit.py")), str(out)],
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
