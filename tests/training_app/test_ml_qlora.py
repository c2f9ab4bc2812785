"""QLoRA on the tiny model: a LoRA adapter trained over the base loaded in 4-bit NF4 (bitsandbytes, CPU backend)."""

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from tests.training_app.conftest import guardrail_pairs
from tests.training_app.test_ml_checkpoint import Keeper, losses
from tests.training_app.test_ml_parallel import CONFIG as PARALLEL_CONFIG
from tests.training_app.test_ml_parallel import PAIRS as PARALLEL_PAIRS
from tests.training_app.test_ml_parallel import Losses
from tests.training_app.test_ml_train import Recorder
from training_app.ml.checkpoint import LoopOptions
from training_app.ml.config import ConfigError, TrainConfig, qlora_problem
from training_app.ml.data import ChatExample
from training_app.ml.registry import QuantizationUnavailable, load_base, load_model, load_tokenizer
from training_app.ml.train import fit, prepare_model, train

from bitsandbytes.nn import Linear4bit  # isort: skip (after training_app.ml.registry, which quiets its import)

pytestmark = pytest.mark.embedded_only

PAIRS = [ChatExample(prompt=pair["prompt"], response=pair["response"]) for pair in guardrail_pairs()]
QLORA = {"method": "qlora", "epochs": 3, "batch_size": 4, "learning_rate": 5e-3, "lora_r": 4, "lora_alpha": 8}


def quantized_model(source, cfg):
    model = load_base(source, device="cpu", dtype=torch.float32, quantized=True)
    return prepare_model(model, cfg)


def tokenizer_of(source):
    return load_tokenizer(source)


def four_bit_layers(model):
    return [name for name, module in model.named_modules() if isinstance(module, Linear4bit)]


def test_qlora_trains_an_adapter_over_a_frozen_4bit_base_and_the_loss_falls(tiny_source):
    cfg = TrainConfig(**{**QLORA, "learning_rate": 3e-2})
    model = quantized_model(tiny_source, cfg)
    frozen = {name: p.detach().clone() for name, p in model.named_parameters() if not p.requires_grad}
    recorder = Recorder()
    fit(model, tokenizer_of(tiny_source), PAIRS, PAIRS[:2], cfg, recorder)

    # every targeted projection of both blocks (and the MLP's, untargeted) is a 4-bit layer under its adapter
    assert len([name for name in four_bit_layers(model) if name.endswith("q_proj.base_layer")]) == 2
    assert any(name.endswith("mlp.up_proj") for name in four_bit_layers(model))
    trained = [name for name, p in model.named_parameters() if p.requires_grad]
    assert trained
    assert all("lora_" in name for name in trained)
    for name, p in model.named_parameters():
        if not p.requires_grad:
            assert torch.equal(p, frozen[name]), name
    epoch_losses = [metrics["train_loss"] for _, metrics in recorder.epochs]
    assert epoch_losses == sorted(epoch_losses, reverse=True)
    assert epoch_losses[-1] < epoch_losses[0] - 1.0  # as far as LoRA's over the full-precision base (10.9 to 9.5)
    val_losses = [metrics["val_loss"] for _, metrics in recorder.epochs]
    assert val_losses[-1] < val_losses[0]
    assert any("qlora (base in 4-bit NF4)" in line for line in recorder.lines)


def test_a_saved_qlora_adapter_answers_over_the_4bit_base_as_it_did_in_training(tiny_source, tmp_path):
    cfg = TrainConfig(**{**QLORA, "epochs": 2})
    result = train(tiny_source, PAIRS, [], cfg, tmp_path / "run")
    assert (result.out_dir / "adapter_model.safetensors").is_file()
    assert not (result.out_dir / "model.safetensors").exists()  # the 4-bit base is not part of the artifact

    model, tokenizer = load_model(tiny_source, adapter_dir=result.out_dir, device="cpu", quantized=True)
    assert four_bit_layers(model)
    batch = tokenizer(["What dose of medicine number 1 should I take?"], return_tensors="pt")
    with torch.no_grad():
        four_bit = model(**batch).logits
        full, _ = load_model(tiny_source, adapter_dir=result.out_dir, device="cpu")
        full_precision = full(**batch).logits
    assert not four_bit_layers(full)
    assert not torch.allclose(four_bit, full_precision, atol=1e-3)  # the 4-bit base really is another model


def test_a_resumed_qlora_loop_ends_where_the_uninterrupted_one_does(tiny_source, tmp_path):
    stopped_at = 4  # in the middle of the second epoch (3 steps each)
    cfg = TrainConfig(**{**QLORA, "lora_dropout": 0.1})
    tokenizer = tokenizer_of(tiny_source)
    whole = Recorder()
    whole_model = quantized_model(tiny_source, cfg)
    fit(whole_model, tokenizer, PAIRS, [], cfg, whole)

    stopped = Keeper(tmp_path / "kept", every=1, stop_after=stopped_at + 1)  # stops after the checkpoint's step
    fit(quantized_model(tiny_source, cfg), tokenizer, PAIRS, [], cfg, stopped)
    assert set(torch.load(stopped.kept[stopped_at] / "checkpoint.pt", weights_only=True)["weights"]) == {
        name for name, p in whole_model.named_parameters() if p.requires_grad
    }  # only the adapter: the 4-bit base is never in a checkpoint
    resumed = Recorder()
    resumed_model = quantized_model(tiny_source, cfg)
    fit(resumed_model, tokenizer, PAIRS, [], cfg, resumed, options=LoopOptions(resume=stopped.kept[stopped_at]))

    assert losses(resumed) == losses(whole)[stopped_at:]
    resumed_weights = dict(resumed_model.named_parameters())
    for name, param in whole_model.named_parameters():
        if param.requires_grad:
            torch.testing.assert_close(resumed_weights[name], param, rtol=1e-4, atol=1e-6)


def test_smaller_forward_passes_and_gradient_checkpointing_train_the_same_qlora_steps(tiny_source):
    cfg = {**QLORA, "epochs": 1, "lora_dropout": 0.0}
    tokenizer = tokenizer_of(tiny_source)
    plain, split, recomputed = Recorder(), Recorder(), Recorder()
    fit(quantized_model(tiny_source, TrainConfig(**cfg)), tokenizer, PAIRS, [], TrainConfig(**cfg), plain)
    fit(
        quantized_model(tiny_source, TrainConfig(**cfg)), tokenizer, PAIRS, [], TrainConfig(**cfg), split,
        options=LoopOptions(micro_batch=1),
    )  # fmt: skip
    checkpointing = TrainConfig(**cfg, gradient_checkpointing=True)
    fit(quantized_model(tiny_source, checkpointing), tokenizer, PAIRS, [], checkpointing, recomputed)
    expected = [m["loss"] for _, m in plain.steps]
    assert [m["loss"] for _, m in split.steps] == pytest.approx(expected, rel=1e-4)
    assert [m["loss"] for _, m in recomputed.steps] == pytest.approx(expected, rel=1e-5)


def test_qlora_refuses_to_start_from_another_run_s_adapter(tiny_source, tmp_path):
    with pytest.raises(ConfigError, match="qlora cannot start from another run's adapter") as refused:
        train(tiny_source, PAIRS, [], TrainConfig(**QLORA), tmp_path / "run", init_artifact=tmp_path / "earlier")
    assert [name for name, _ in refused.value.problems] == ["method"]
    assert not (tmp_path / "run").exists()


def test_without_bitsandbytes_qlora_is_refused_saying_it_needs_it(tiny_source, monkeypatch):
    monkeypatch.setitem(sys.modules, "bitsandbytes", None)  # what an environment without the package imports
    assert "QLoRA needs bitsandbytes" in qlora_problem("qlora")
    assert qlora_problem("lora") is None
    with pytest.raises(QuantizationUnavailable, match="QLoRA needs bitsandbytes"):
        load_base(tiny_source, device="cpu", dtype=torch.float32, quantized=True)


def test_two_gloo_processes_train_the_qlora_steps_one_process_trains(tiny_source, tmp_path):
    out = tmp_path / "rank0.json"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    root = Path(__file__).parents[2]
    env = {key: value for key, value in os.environ.items() if key not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    done = subprocess.run(  # noqa: S603
        [*command, str(Path(__file__).with_name("parallel_fit.py")), str(out), str(tiny_source)],
        cwd=root, env={**env, "PYTHONPATH": str(root)}, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    parallel = json.loads(out.read_text())

    cfg = replace(PARALLEL_CONFIG, method="qlora")
    model = quantized_model(tiny_source, cfg)
    single = Losses()
    fit(model, tokenizer_of(tiny_source), PARALLEL_PAIRS, [], cfg, single)
    assert len(parallel["losses"]) == len(single.losses) == 4
    assert parallel["losses"] == pytest.approx(single.losses, rel=1e-4)
    for name, param in model.named_parameters():
        if param.requires_grad:
            torch.testing.assert_close(torch.tensor(parallel["weights"][name]), param.detach(), rtol=1e-4, atol=1e-6)
