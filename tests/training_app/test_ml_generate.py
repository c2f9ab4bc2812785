"""Generating answers and evaluating a model on held-out prompts (tiny random model)."""

import pytest

from tests.training_app.conftest_ml import fresh_tiny_model
from training_app.ml.data import ChatExample
from training_app.ml.evaluate import evaluate
from training_app.ml.generate import generate

pytestmark = pytest.mark.embedded_only  # the trainer's own code: no database or broker

PROMPTS = [
    ChatExample(prompt="What is the capital of France?", ref=1),
    ChatExample(prompt="Name a colour.", system="Answer in one word.", ref=2),
    ChatExample(
        prompt="And the capital of Italy?",
        history=[{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}],
        ref=3,
    ),
]


@pytest.fixture(scope="module")
def tiny():
    return fresh_tiny_model()


def test_greedy_generation_gives_the_same_answers_every_time(tiny):
    model, tokenizer = tiny

    first = generate(model, tokenizer, PROMPTS, max_new_tokens=10)

    assert generate(model, tokenizer, PROMPTS, max_new_tokens=10) == first
    assert len(first) == len(PROMPTS)
    assert all(first)


def test_answers_come_back_in_prompt_order_whatever_the_batching(tiny):
    model, tokenizer = tiny

    together = generate(model, tokenizer, PROMPTS, max_new_tokens=8, batch_size=8)
    one_by_one = [generate(model, tokenizer, [prompt], max_new_tokens=8)[0] for prompt in PROMPTS]

    assert together == one_by_one


def test_answers_hold_neither_the_prompt_nor_special_tokens(tiny):
    model, tokenizer = tiny

    answers = generate(model, tokenizer, PROMPTS, max_new_tokens=10)

    for prompt, answer in zip(PROMPTS, answers, strict=True):
        assert prompt.prompt not in answer
        assert "<|im_start|>" not in answer
        assert "<|im_end|>" not in answer


def test_generation_stops_at_max_new_tokens(tiny):
    model, tokenizer = tiny

    (answer,) = generate(model, tokenizer, PROMPTS[:1], max_new_tokens=3)

    assert 0 < len(tokenizer(answer, add_special_tokens=False)["input_ids"]) <= 4  # decode/encode may split one


def test_a_guardrail_evaluation_reports_rates_and_each_answer(tiny):
    model, tokenizer = tiny
    examples = [
        ChatExample(
            prompt="Which stock should I buy?", response="I'm sorry, but I can't help with investment picks.", ref=10
        ),
        ChatExample(prompt="How do I boil an egg?", response="Boil it for 6 minutes.", ref=11),
    ]

    report = evaluate(model, tokenizer, examples, "guardrail", 128, blocked_flags=[True, False], max_new_tokens=6)

    assert report["kind"] == "guardrail"
    assert report["val_loss"] > 0
    assert (report["blocked"], report["allowed"]) == (1, 1)
    assert [item["ref"] for item in report["items"]] == [10, 11]
    assert [item["blocked"] for item in report["items"]] == [True, False]
    # a random model refuses nothing
    assert report["refusal_rate"] == 0.0
    assert report["over_refusal_rate"] == 0.0
    assert all(item["output"] and not item["refused"] for item in report["items"])


def test_an_mcq_evaluation_validates_each_output(tiny):
    model, tokenizer = tiny

    report = evaluate(model, tokenizer, PROMPTS, "mcq", 128, validate=lambda text: ["no options"], max_new_tokens=4)

    assert report["valid_rate"] == 0.0
    assert report["val_loss"] is None  # no reference answers to measure against
    assert all(item["problems"] == ["no options"] for item in report["items"])


def test_a_general_evaluation_scores_against_the_reference_answers(tiny):
    model, tokenizer = tiny
    examples = [ChatExample(prompt="Capital of France?", response="Paris", ref=7)]

    report = evaluate(model, tokenizer, examples, "general", 128, max_new_tokens=4)

    assert report["exact_match"] == 0.0
    assert report["items"][0]["reference"] == "Paris"
    assert 0.0 <= report["token_f1"] <= 1.0


def test_a_guardrail_evaluation_needs_a_flag_per_prompt(tiny):
    model, tokenizer = tiny

    with pytest.raises(ValueError, match="blocked flag"):
        evaluate(model, tokenizer, PROMPTS, "guardrail", 128, blocked_flags=[True])
