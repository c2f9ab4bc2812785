"""Checkpoints: a loop stopped after a checkpoint and started again from it, in a fresh model, goes on exactly as
the uninterrupted loop did; smaller forward passes (the out-of-memory retry) train the same steps."""

import shutil

import pytest
import torch

from tests.training_app.conftest_ml import fresh_tiny_model
from tests.training_app.test_ml_train import Recorder
from training_app.ml.checkpoint import LoopOptions
from training_app.ml.config import TrainConfig
from training_app.ml.data import ChatExample
from training_app.ml.preference import fit_preference
from training_app.ml.train import fit, prepare_model

pytestmark = pytest.mark.embedded_only

PAIRS = [ChatExample(prompt=f"What is {n} plus {n}?", response=f"{n} plus {n} is {2 * n}.") for n in range(6)]
PREFERENCES = [
    ChatExample(prompt=f"Tell me about topic {n}.", response=f"Topic {n} is fine.", rejected="I can't help with that.")
    for n in range(6)
]
# Dropout on, so the random states matter; 3 steps an epoch, 9 in all.
CONFIG = {"epochs": 3, "batch_size": 2, "learning_rate": 5e-3, "lora_r": 4, "lora_alpha": 8, "lora_dropout": 0.1}


class Keeper(Recorder):
    """Records like Recorder, and keeps a copy of each checkpoint the loop hands over."""

    def __init__(self, folder, every=1, stop_after=None):
        super().__init__(stop_after)
        self.folder, self.every, self.kept = folder, every, {}

    def checkpoint_due(self, step):
        return step % self.every == 0

    def on_checkpoint(self, step, directory):
        self.kept[step] = shutil.copytree(directory, self.folder / f"step-{step}")


def trained(cfg, examples, callbacks, options=None, loop=fit):
    model, tokenizer = fresh_tiny_model()
    model = prepare_model(model, cfg)
    result = loop(model, tokenizer, examples, examples[:2], cfg, callbacks, options=options)
    return result, {name: p.detach().clone() for name, p in model.named_parameters() if p.requires_grad}


def losses(recorder):
    return [(step, round(metrics["loss"], 5)) for step, metrics in recorder.steps]


@pytest.mark.parametrize(("objective", "examples", "loop"), [("sft", PAIRS, fit), ("dpo", PREFERENCES, fit_preference)])
@pytest.mark.parametrize("stopped_at", [4, 6])  # in the middle of an epoch, and at an epoch's end
def test_a_resumed_loop_continues_the_steps_and_ends_where_the_uninterrupted_one_does(
    tmp_path, objective, examples, loop, stopped_at
):
    cfg = TrainConfig(**CONFIG, objective=objective)
    whole = Keeper(tmp_path / "whole", every=1000)
    whole_result, whole_weights = trained(cfg, examples, whole, loop=loop)

    killed = Keeper(tmp_path / "killed", every=1, stop_after=stopped_at + 1)  # dies after the checkpoint's step
    trained(cfg, examples, killed, loop=loop)
    resumed = Recorder()
    options = LoopOptions(resume=killed.kept[stopped_at])
    result, weights = trained(cfg, examples, resumed, options=options, loop=loop)

    assert [step for step, _ in resumed.steps] == list(range(stopped_at + 1, 10))  # steps go on, not from 0
    assert losses(resumed) == losses(whole)[stopped_at:]
    assert result.steps == whole_result.steps == 9
    assert result.final_loss == pytest.approx(whole_result.final_loss, rel=1e-5)
    assert [epoch for epoch, _ in resumed.epochs] == [epoch for epoch, _ in whole.epochs][stopped_at // 3 :]
    for name, value in whole_weights.items():
        torch.testing.assert_close(weights[name], value)
    assert f"resumed from the checkpoint of step {stopped_at}" in resumed.lines


def test_smaller_forward_passes_train_the_same_steps():
    cfg = TrainConfig(**{**CONFIG, "lora_dropout": 0.0, "batch_size": 4, "epochs": 1})
    whole, small = Recorder(), Recorder()
    _, whole_weights = trained(cfg, PAIRS, whole)
    _, small_weights = trained(cfg, PAIRS, small, options=LoopOptions(micro_batch=1))
    assert [m["loss"] for _, m in small.steps] == pytest.approx([m["loss"] for _, m in whole.steps], rel=1e-4)
    for name, value in whole_weights.items():
        torch.testing.assert_close(small_weights[name], value, rtol=1e-4, atol=1e-6)


def test_a_checkpoint_of_another_method_is_refused(tmp_path):
    lora = Keeper(tmp_path, every=1, stop_after=2)
    trained(TrainConfig(**CONFIG), PAIRS, lora)
    with pytest.raises(ValueError, match="another model or method"):
        trained(TrainConfig(**CONFIG, method="full"), PAIRS, Recorder(), options=LoopOptions(resume=lora.kept[1]))


@pytest.mark.parametrize("method", ["lora", "full"])
def test_gradient_checkpointing_trains_the_same_steps(method):
    cfg = {**CONFIG, "lora_dropout": 0.0, "epochs": 1, "method": method}
    plain, recomputed = Recorder(), Recorder()
    _, plain_weights = trained(TrainConfig(**cfg), PAIRS, plain)
    _, recomputed_weights = trained(TrainConfig(**cfg, gradient_checkpointing=True), PAIRS, recomputed)
    assert [m["loss"] for _, m in recomputed.steps] == pytest.approx([m["loss"] for _, m in plain.steps], rel=1e-5)
    for name, value in plain_weights.items():
        torch.testing.assert_close(recomputed_weights[name], value, rtol=1e-4, atol=1e-6)
