"""Preference tuning (DPO, ORPO) on the tiny random model: the mask, the losses, learning, stacking on an earlier
run, preference accuracy, cancel and full fine-tuning."""

import math

import pytest
import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM

from tests.training_app.conftest_ml import fresh_tiny_model, tiny_source, tiny_tokenizer
from tests.training_app.test_ml_train import Recorder
from training_app.ml.config import TrainConfig, objective_defaults, settings_schema, validate_config
from training_app.ml.data import IGNORE_INDEX, ChatExample, collate, render_prompt
from training_app.ml.preference import (
    CPU_MAX_PASS_TOKENS,
    encode_pairs,
    fit_preference,
    pair_passes,
    preference_accuracy,
    sequence_logps,
)
from training_app.ml.registry import load_model, quiet_peft
from training_app.ml.train import CANCELLED, SUCCEEDED, prepare_model, train

pytestmark = pytest.mark.embedded_only  # the trainer's own code: no database or broker

# Half the pairs prefer the longer answer, half the shorter, so neither length nor chance decides.
PAIRS = [
    ChatExample(prompt=f"Is {n} an even number?", response=f"Yes, {n} is even.", rejected=f"No, {n} is odd, I think.")
    if n % 2 == 0
    else ChatExample(prompt=f"Is {n} an even number?", response=f"No, {n} is odd.", rejected=f"Yes, {n} is even.")
    for n in range(6)
]
QUICK = {"batch_size": 3, "max_seq_len": 128, "lora_r": 4, "lora_alpha": 8, "warmup_ratio": 0.0}
DPO = TrainConfig(**QUICK, objective="dpo", epochs=4, learning_rate=1e-2)


@pytest.fixture
def source():
    return tiny_source()


def labelled_text(tokenizer, encoded) -> str:
    return tokenizer.decode([label for label in encoded.labels if label != IGNORE_INDEX])


def test_a_pair_trains_on_its_two_final_answers_only_after_the_same_context():
    tokenizer = tiny_tokenizer()
    history = [
        {"role": "user", "content": "Hello?"},
        {"role": "assistant", "content": "Hi, how can I help?", "weight": 1},
    ]
    ex = ChatExample(
        prompt="Is 4 even?", response="Yes.", rejected="No, it is odd.", history=history, system="Be brief"
    )

    (pair,) = encode_pairs(tokenizer, [ex], 256)

    assert labelled_text(tokenizer, pair.chosen) == "Yes.<|im_end|>"
    assert labelled_text(tokenizer, pair.rejected) == "No, it is odd.<|im_end|>"  # the weighted history turn is context
    context = len(tokenizer(render_prompt(tokenizer, ex), add_special_tokens=False)["input_ids"])
    assert pair.chosen.input_ids[:context] == pair.rejected.input_ids[:context]
    assert all(label == IGNORE_INDEX for label in pair.chosen.labels[:context])


def test_a_too_long_pair_is_truncated_as_supervised_examples_are():
    tokenizer = tiny_tokenizer()
    ex = ChatExample(prompt="word " * 300, response="Yes.", rejected="No.")

    (pair,) = encode_pairs(tokenizer, [ex], 64)

    assert len(pair.chosen) <= 64
    assert len(pair.rejected) <= 64
    assert pair.truncated
    assert labelled_text(tokenizer, pair.chosen) == "Yes.<|im_end|>"  # the oldest context goes, not the answer


def test_an_example_without_a_rejected_answer_is_refused_for_training():
    with pytest.raises(ValueError, match="no rejected answer"):
        encode_pairs(tiny_tokenizer(), [ChatExample(prompt="Hi", response="Hello")], 64)


def test_chosen_and_rejected_in_one_padded_forward_score_as_each_alone():
    model, tokenizer = fresh_tiny_model()
    pairs = encode_pairs(tokenizer, PAIRS[:3], 128)
    rows = [pair.chosen for pair in pairs] + [pair.rejected for pair in pairs]

    with torch.no_grad():
        together, counts = sequence_logps(model, collate(rows, tokenizer.pad_token_id))
        alone = [sequence_logps(model, collate([row], tokenizer.pad_token_id))[0].item() for row in rows]

    assert together.tolist() == pytest.approx(alone, abs=1e-3)
    assert counts.tolist() == [row.n_labels for row in rows]


def test_on_cpu_a_batch_of_long_pairs_runs_as_passes_that_bound_the_memory():
    tokenizer = tiny_tokenizer()
    long = [ChatExample(prompt="word " * 300, response=f"Yes {n}.", rejected="No.") for n in range(8)]
    pairs = encode_pairs(tokenizer, long, 512)

    passes = list(pair_passes([list(range(8))], pairs, torch.device("cpu")))

    assert len(passes) > 1
    assert sorted(i for run in passes for i in run) == list(range(8))
    assert all(2 * len(run) * max(len(pairs[i]) for i in run) <= CPU_MAX_PASS_TOKENS for run in passes)


def test_dpo_starts_at_log_2_and_learns_to_reward_the_chosen_answers():
    model, tokenizer = fresh_tiny_model()
    model = prepare_model(model, DPO)
    before = preference_accuracy(model, tokenizer, PAIRS, 128)
    recorder = Recorder()

    result = fit_preference(model, tokenizer, PAIRS, PAIRS[:3], DPO, recorder)

    first, last = recorder.steps[0][1], recorder.steps[-1][1]
    assert first["loss"] == pytest.approx(math.log(2), abs=1e-4)  # the fresh adapter is the reference
    assert first["reward_margin"] == pytest.approx(0, abs=1e-4)
    assert last["reward_accuracy"] == 1.0
    assert last["reward_margin"] > 0.2
    assert last["loss"] < 0.6
    assert set(first) == {"loss", "learning_rate", "grad_norm", "tokens_per_s", "epoch", "reward_margin",
                          "reward_accuracy", "logp_chosen", "logp_rejected"}  # fmt: skip
    after = preference_accuracy(model, tokenizer, PAIRS, 128)
    assert before["accuracy"] < 1.0
    assert after["accuracy"] == 1.0
    assert result.status == SUCCEEDED
    assert result.steps == recorder.total_steps == 8
    assert [epoch for epoch, _ in recorder.epochs] == [1, 2, 3, 4]
    assert recorder.epochs[-1][1]["val_loss"] < recorder.epochs[0][1]["val_loss"] < math.log(2)


def test_orpo_runs_without_a_reference_and_lowers_its_loss():
    model, tokenizer = fresh_tiny_model()
    cfg = TrainConfig(**{**QUICK, "objective": "orpo", "epochs": 6, "learning_rate": 1e-2})
    recorder = Recorder()

    result = fit_preference(prepare_model(model, cfg), tokenizer, PAIRS, [], cfg, recorder)

    losses = [metrics["loss"] for _, metrics in recorder.steps]
    assert losses[-1] < losses[0] - 1  # mostly the chosen answers' NLL, about ln(49152) at first
    assert recorder.steps[-1][1]["reward_accuracy"] == 1.0
    assert not any("reference model" in line for line in recorder.lines)
    assert result.val_loss is None
    assert preference_accuracy(model, tokenizer, PAIRS, 128)["accuracy"] == 1.0


def test_preference_accuracy_counts_the_pairs_whose_chosen_answer_scores_higher():
    model, tokenizer = fresh_tiny_model()
    pair = PAIRS[0]
    swapped = ChatExample(prompt=pair.prompt, response=pair.rejected, rejected=pair.response)

    scores = preference_accuracy(model, tokenizer, [pair, swapped, pair], 128, batch_size=2)

    chosen, rejected = scores["chosen_logp"][0], scores["rejected_logp"][0]
    assert chosen != pytest.approx(rejected)
    assert scores["correct"] == [chosen > rejected, chosen < rejected, chosen > rejected]
    assert scores["n"] == 3
    assert scores["accuracy"] == pytest.approx(sum(scores["correct"]) / 3)
    assert scores["chosen_logp"][1] == pytest.approx(rejected, abs=1e-4)  # batching does not change a score
    # the score is the answer's log-probability as the model gives it: compare with one plain forward
    ids = encode_pairs(tokenizer, [pair], 128)[0].chosen
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([ids.input_ids])).logits[0, :-1].log_softmax(-1)
    targets = torch.tensor(ids.labels[1:])
    wanted = targets != IGNORE_INDEX
    assert logits[wanted].gather(1, targets[wanted, None]).sum().item() == pytest.approx(chosen, abs=1e-3)
    assert preference_accuracy(model, tokenizer, [], 128) == {
        "accuracy": None, "n": 0, "correct": [], "chosen_logp": [], "rejected_logp": []
    }  # fmt: skip


def test_a_run_stacked_on_an_earlier_one_loads_as_base_plus_both_adapters(source, tmp_path):
    sft = TrainConfig(**{**QUICK, "epochs": 3, "learning_rate": 1e-2})
    sft_run = train(source, PAIRS, [], sft, tmp_path / "sft", None)
    recorder = Recorder()

    dpo_run = train(source, PAIRS, [], DPO, tmp_path / "dpo", recorder, init_artifact=sft_run.out_dir)

    assert (tmp_path / "dpo" / "init" / "adapter_model.safetensors").exists()
    assert (tmp_path / "dpo" / "init" / "adapter_config.json").exists()
    assert recorder.steps[0][1]["loss"] == pytest.approx(math.log(2), abs=1e-4)  # the reference includes the SFT
    loaded, tokenizer = load_model(source, adapter_dir=dpo_run.out_dir, device="cpu")
    ids = torch.tensor([tokenizer("Is 3 an even number?")["input_ids"]])
    with quiet_peft():
        by_hand = AutoModelForCausalLM.from_pretrained(source, dtype=torch.float32)
        by_hand = PeftModel.from_pretrained(by_hand, sft_run.out_dir).merge_and_unload()
        by_hand = PeftModel.from_pretrained(by_hand, dpo_run.out_dir).eval()
    without_init, _ = load_model(source, adapter_dir=sft_run.out_dir, device="cpu")
    with torch.no_grad():
        logits = loaded(input_ids=ids).logits
        assert torch.allclose(logits, by_hand(input_ids=ids).logits, atol=1e-4)
        assert not torch.allclose(logits, without_init(input_ids=ids).logits, atol=1e-3)  # the DPO adapter matters


def test_a_third_run_carries_the_whole_chain(source, tmp_path):
    first = train(source, PAIRS, [], TrainConfig(**{**QUICK, "epochs": 1}), tmp_path / "one", None)
    second = train(source, PAIRS, [], TrainConfig(**{**QUICK, "epochs": 1}), tmp_path / "two", None,
                   init_artifact=first.out_dir)  # fmt: skip

    third = train(source, PAIRS, [], DPO, tmp_path / "three", None, init_artifact=second.out_dir)

    assert (third.out_dir / "init" / "init" / "adapter_model.safetensors").exists()
    model, tokenizer = load_model(source, adapter_dir=third.out_dir, device="cpu")
    assert preference_accuracy(model, tokenizer, PAIRS, 128)["n"] == 6


def test_cancelling_a_dpo_run_stops_after_the_step_and_saves_nothing(source, tmp_path):
    recorder = Recorder(stop_after=3)

    result = train(source, PAIRS, PAIRS, DPO, tmp_path / "run", recorder)

    assert result.status == CANCELLED
    assert result.steps == len(recorder.steps) == 3
    assert result.out_dir is None
    assert not (tmp_path / "run").exists()


def test_a_full_fine_tune_with_dpo_learns_and_saves_complete_weights(source, tmp_path):
    # one batch of all six pairs: smaller batches pull the whole model towards their own half's answer length
    cfg = TrainConfig(**{**QUICK, "method": "full", "objective": "dpo", "epochs": 4, "learning_rate": 1e-3,
                         "batch_size": 6})  # fmt: skip
    recorder = Recorder()

    result = train(source, PAIRS, [], cfg, tmp_path / "run", recorder)

    assert recorder.steps[0][1]["loss"] == pytest.approx(math.log(2), abs=1e-4)
    assert recorder.steps[-1][1]["reward_accuracy"] == 1.0
    assert (tmp_path / "run" / "model.safetensors").exists()
    model, tokenizer = load_model(result.out_dir, device="cpu")
    assert preference_accuracy(model, tokenizer, PAIRS, 128)["accuracy"] == 1.0


def test_objective_and_beta_are_validated_and_documented():
    assert validate_config({"objective": "dpo", "beta": 10}) == []
    assert [name for name, _ in validate_config({"objective": "ppo", "beta": 0})] == ["objective", "beta"]
    assert [name for name, _ in validate_config({"beta": "high"})] == ["beta"]
    assert TrainConfig().objective == "sft"
    assert TrainConfig().beta == 0.1
    schema = settings_schema()["properties"]
    assert schema["objective"]["enum"] == ["sft", "dpo", "orpo"]
    assert schema["beta"]["maximum"] == 10
    assert objective_defaults("dpo") == {"learning_rate": 5e-4, "epochs": 3}
    assert objective_defaults("orpo") == {"learning_rate": 8e-4, "epochs": 5}
    assert objective_defaults("sft") == {}
