"""Fine-tuning on the tiny random model: learning, progress reports, cancel, saving and loading."""

import json

import pytest
import torch
from safetensors import safe_open

from tests.training_app.conftest_ml import fresh_tiny_model, tiny_source
from training_app.ml.data import ChatExample, collate, encode, split_by_length
from training_app.ml.generate import generate
from training_app.ml.loss import validation_loss
from training_app.ml.registry import load_model
from training_app.ml.train import (
    CANCELLED,
    SUCCEEDED,
    ConfigError,
    NullCallbacks,
    TrainConfig,
    answer_loss_sum,
    fit,
    prepare_model,
    save_trained,
    train,
    validate_config,
)

pytestmark = pytest.mark.embedded_only  # the trainer's own code: no database or broker

PAIRS = [ChatExample(prompt=f"What is {n} plus {n}?", response=f"{n} plus {n} is {2 * n}.") for n in range(4)]
QUICK = {"epochs": 2, "batch_size": 2, "max_seq_len": 128, "lora_r": 4, "lora_alpha": 8}


class Recorder(NullCallbacks):
    def __init__(self, stop_after: int | None = None):
        self.total_steps = None
        self.steps: list[tuple[int, dict]] = []
        self.epochs: list[tuple[int, dict]] = []
        self.lines: list[str] = []
        self.stop_after = stop_after

    def on_start(self, total_steps):
        self.total_steps = total_steps

    def on_step(self, step, metrics):
        self.steps.append((step, metrics))

    def on_epoch(self, epoch, metrics):
        self.epochs.append((epoch, metrics))

    def on_log(self, line):
        self.lines.append(line)

    def should_stop(self):
        return self.stop_after is not None and len(self.steps) >= self.stop_after


@pytest.fixture
def source():
    return tiny_source()


def test_overfitting_four_pairs_drives_the_loss_far_down():
    model, tokenizer = fresh_tiny_model()
    cfg = TrainConfig(method="full", epochs=12, learning_rate=1e-2, batch_size=2, warmup_ratio=0.0)
    recorder = Recorder()

    result = fit(prepare_model(model, cfg), tokenizer, PAIRS, [], cfg, recorder)

    first_loss = recorder.steps[0][1]["loss"]
    assert first_loss > 10  # about ln(49152): a random model guesses uniformly
    assert result.final_loss < first_loss / 3
    assert result.status == SUCCEEDED


def test_a_weighted_conversation_teaches_its_weight_1_answers_and_not_its_weight_0_ones():
    def trained_on(paris_weight: int) -> tuple[float, float]:
        """The tiny model's loss on Paris and on Lisbon, each as the answer to its question, after training."""
        history = [
            {"role": "user", "content": "Capital of France?"},
            {"role": "assistant", "content": "Paris is the capital of France.", "weight": paris_weight},
            {"role": "user", "content": "Of Spain?"},
            {"role": "assistant", "content": "Lisbon, I would guess.", "weight": 0},
        ]
        model, tokenizer = fresh_tiny_model()
        cfg = TrainConfig(method="full", epochs=20, learning_rate=1e-2, batch_size=1, warmup_ratio=0.0)
        fit(prepare_model(model, cfg), tokenizer, [ChatExample(prompt="Sure?", response="Madrid.", history=history)], [],
            cfg)  # fmt: skip
        asked = [ChatExample(prompt=history[n - 1]["content"], response=history[n]["content"], history=history[: n - 1])
                 for n in (1, 3)]  # fmt: skip
        paris, lisbon = (validation_loss(model, tokenizer, [ex], 128, 1) for ex in asked)
        return paris, lisbon

    paris, lisbon = trained_on(paris_weight=1)
    paris_as_context, _ = trained_on(paris_weight=0)

    assert paris < 1  # learnt, as the final answer is
    assert paris_as_context > 5  # not learnt: near a random model's guess (ln 49152 is 10.8)
    assert lisbon > 3


def test_running_a_batch_as_runs_of_similar_length_gives_the_same_gradients():
    model, tokenizer = fresh_tiny_model()
    model = prepare_model(model, TrainConfig(lora_dropout=0.0))
    lengths = [1, 2, 30, 32, 90]
    encoded = [encode(tokenizer, ChatExample(prompt="word " * n, response="an answer"), 512) for n in lengths]

    def gradients(runs):
        model.zero_grad()
        loss = sum(answer_loss_sum(model, collate([encoded[i] for i in run], tokenizer.pad_token_id)) for run in runs)
        loss.backward()
        return loss.item(), [p.grad.clone() for p in model.parameters() if p.requires_grad]

    runs = split_by_length(range(5), encoded, max_padding=0.1)
    assert len(runs) == 3  # the short pair, the middle pair and the long one
    padded_loss, padded_grads = gradients([list(range(5))])
    split_loss, split_grads = gradients(runs)

    assert split_loss == pytest.approx(padded_loss, rel=1e-5)
    # float32 sums in another order differ in the last bits, so compare each gradient's error to its size
    assert all(
        torch.linalg.vector_norm(a - b) <= 1e-5 * torch.linalg.vector_norm(b)
        for a, b in zip(padded_grads, split_grads, strict=True)
    )


def test_callbacks_hear_every_step_and_every_epoch(source, tmp_path):
    recorder = Recorder()

    result = train(source, PAIRS, PAIRS[:2], TrainConfig(**QUICK), tmp_path / "run", recorder)

    assert recorder.total_steps == result.total_steps == result.steps == 4  # 2 epochs of 2 batches
    assert [step for step, _ in recorder.steps] == [1, 2, 3, 4]
    for _, metrics in recorder.steps:
        assert set(metrics) == {"loss", "learning_rate", "grad_norm", "tokens_per_s", "epoch"}
        assert metrics["loss"] > 0
        assert metrics["tokens_per_s"] > 0
    assert [metrics["epoch"] for _, metrics in recorder.steps] == [0.5, 1.0, 1.5, 2.0]
    assert [epoch for epoch, _ in recorder.epochs] == [1, 2]
    assert all(metrics["val_loss"] > 0 for _, metrics in recorder.epochs)
    assert result.val_loss == recorder.epochs[-1][1]["val_loss"]
    assert any("training 4 examples" in line for line in recorder.lines)


def test_the_learning_rate_warms_up_then_decays_to_nothing(source, tmp_path):
    recorder = Recorder()

    train(source, PAIRS, [], TrainConfig(**{**QUICK, "epochs": 5, "warmup_ratio": 0.2}), tmp_path / "run", recorder)

    rates = [metrics["learning_rate"] for _, metrics in recorder.steps]
    peak = max(rates)
    assert rates[0] < peak
    assert peak == pytest.approx(TrainConfig().learning_rate)
    assert rates[-1] < peak / 5
    assert rates[rates.index(peak) :] == sorted(rates[rates.index(peak) :], reverse=True)


def test_stopping_cancels_after_the_step_in_progress_and_saves_nothing(source, tmp_path):
    recorder = Recorder(stop_after=3)

    result = train(source, PAIRS, PAIRS, TrainConfig(**{**QUICK, "epochs": 3}), tmp_path / "run", recorder)

    assert result.status == CANCELLED
    assert result.steps == 3
    assert len(recorder.steps) == 3
    assert [epoch for epoch, _ in recorder.epochs] == [1]  # epoch 1 (steps 1-2) was finished
    assert result.out_dir is None
    assert not (tmp_path / "run").exists()


def test_too_long_examples_are_counted(source, tmp_path):
    long = ChatExample(prompt="word " * 400, response="ok")

    result = train(source, [*PAIRS, long], [], TrainConfig(**{**QUICK, "epochs": 1}), tmp_path / "run", None)

    assert result.truncated_count == 1


def test_a_lora_run_saves_an_adapter_that_reloads_with_the_same_answers(source, tmp_path):
    model, tokenizer = fresh_tiny_model()
    cfg = TrainConfig(**{**QUICK, "learning_rate": 1e-2})
    model = prepare_model(model, cfg)
    result = fit(model, tokenizer, PAIRS, [], cfg)
    before = generate(model, tokenizer, PAIRS, max_new_tokens=12)

    save_trained(model, tokenizer, cfg, tmp_path / "adapter", base=source, result=result)
    reloaded, reloaded_tokenizer = load_model(source, adapter_dir=tmp_path / "adapter", device="cpu")

    files = {path.name for path in (tmp_path / "adapter").iterdir()}
    assert {"adapter_model.safetensors", "adapter_config.json", "train_config.json", "tokenizer.json"} <= files
    assert "model.safetensors" not in files  # an adapter, not a copy of the base
    assert generate(reloaded, reloaded_tokenizer, PAIRS, max_new_tokens=12) == before
    base, base_tokenizer = load_model(source, device="cpu")
    assert generate(base, base_tokenizer, PAIRS, max_new_tokens=12) != before  # the adapter matters


def test_train_writes_the_adapter_tokenizer_and_its_settings(source, tmp_path):
    cfg = TrainConfig(**QUICK)

    result = train(source, PAIRS, [], cfg, tmp_path / "run", None)

    assert result.out_dir == tmp_path / "run"
    saved = json.loads((tmp_path / "run" / "train_config.json").read_text())
    assert saved["config"] == cfg.to_dict()
    assert saved["result"]["steps"] == 4
    assert saved["base"] == str(source)
    with safe_open(tmp_path / "run" / "adapter_model.safetensors", "pt") as weights:
        assert any("lora_A" in key for key in weights.keys())  # noqa: SIM118 (safe_open is not a dict)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no leftovers of the save


def test_a_full_fine_tune_saves_complete_weights_that_load_on_their_own(source, tmp_path):
    cfg = TrainConfig(**{**QUICK, "method": "full", "learning_rate": 1e-3})

    result = train(source, PAIRS, [], cfg, tmp_path / "run", None)

    assert (tmp_path / "run" / "model.safetensors").exists()
    assert not (tmp_path / "run" / "adapter_config.json").exists()
    model, tokenizer = load_model(result.out_dir, device="cpu")
    base, _ = load_model(source, device="cpu")
    trained_weight = model.get_input_embeddings().weight
    assert not trained_weight.equal(base.get_input_embeddings().weight)
    assert len(generate(model, tokenizer, PAIRS[:1], max_new_tokens=4)) == 1


def test_the_same_seed_trains_the_same_model():
    losses = []
    for _ in range(2):
        model, tokenizer = fresh_tiny_model()
        cfg = TrainConfig(**QUICK)
        losses.append(fit(prepare_model(model, cfg), tokenizer, PAIRS, [], cfg).final_loss)

    assert losses[0] == losses[1]


def test_train_refuses_an_output_directory_that_has_files(source, tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "precious.txt").write_text("keep me")

    with pytest.raises(FileExistsError):
        train(source, PAIRS, [], TrainConfig(**QUICK), tmp_path / "run", None)

    assert (tmp_path / "run" / "precious.txt").read_text() == "keep me"


def test_unknown_lora_target_modules_are_named_with_the_choices(source, tmp_path):
    cfg = TrainConfig(**{**QUICK, "lora_target_modules": ["q_proj", "query_key_value"]})

    with pytest.raises(ConfigError) as raised:
        train(source, PAIRS, [], cfg, tmp_path / "run", None)

    (field, message), *_ = raised.value.problems
    assert field == "lora_target_modules"
    assert "query_key_value" in message
    assert "gate_proj" in message


def test_the_default_config_is_valid():
    assert validate_config(TrainConfig().to_dict()) == []
    assert validate_config({}) == []


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"learning_rate": 5}, "learning_rate"),
        ({"learning_rate": "fast"}, "learning_rate"),
        ({"epochs": 0}, "epochs"),
        ({"epochs": 2.5}, "epochs"),
        ({"batch_size": True}, "batch_size"),
        ({"method": "dora"}, "method"),
        ({"lora_dropout": 1.0}, "lora_dropout"),
        ({"lora_target_modules": []}, "lora_target_modules"),
        ({"lora_target_modules": ["q_proj; rm -rf"]}, "lora_target_modules"),
        ({"warmup_ratio": -0.1}, "warmup_ratio"),
        ({"max_seq_len": 8}, "max_seq_len"),
        ({"group_by_length": "yes"}, "group_by_length"),
        ({"optimizer": "sgd"}, "optimizer"),
    ],
)
def test_bad_settings_are_reported_by_field(values, field):
    problems = validate_config(values)

    assert [name for name, _ in problems] == [field]
    with pytest.raises(ConfigError):
        TrainConfig.from_dict(values)


def test_the_message_says_what_range_is_allowed():
    assert validate_config({"learning_rate": 2}) == [("learning_rate", "must be between 1e-07 and 1")]


def test_every_problem_is_reported_at_once():
    problems = validate_config({"epochs": -1, "learning_rate": 0, "method": "magic"})

    assert {name for name, _ in problems} == {"epochs", "learning_rate", "method"}
