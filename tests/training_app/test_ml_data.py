"""Encoding chat examples: what the loss sees, truncation, batching."""

import random

import pytest
import torch

from tests.training_app.conftest_ml import tiny_tokenizer
from training_app.ml.data import (
    IGNORE_INDEX,
    ChatExample,
    collate,
    encode,
    encode_prompt,
    make_batches,
    padding_fraction,
    split_by_length,
)

CONVERSATION = ChatExample(
    prompt="And what is 2+2?",
    response="It is 4.",
    system="Answer briefly.",
    history=[
        {"role": "user", "content": "What is 1+1?"},
        {"role": "assistant", "content": "It is 2."},
    ],
)


@pytest.fixture
def tokenizer():
    return tiny_tokenizer()


def labelled_text(tokenizer, encoded):
    return tokenizer.decode([t for t in encoded.labels if t != IGNORE_INDEX])


def test_only_the_final_answer_and_its_end_of_turn_are_learnt(tokenizer):
    encoded = encode(tokenizer, CONVERSATION, max_len=512)

    assert labelled_text(tokenizer, encoded) == "It is 4.<|im_end|>"
    # the labelled tokens are one block at the very end: system, history and prompt are context
    first = next(i for i, t in enumerate(encoded.labels) if t != IGNORE_INDEX)
    assert all(t == IGNORE_INDEX for t in encoded.labels[:first])
    assert encoded.labels[first:] == encoded.input_ids[first:]
    context = tokenizer.decode(encoded.input_ids[:first])
    assert "Answer briefly." in context
    assert "It is 2." in context
    assert context.endswith("<|im_start|>assistant\n")
    assert not encoded.truncated


def test_training_sees_the_prompt_exactly_as_generation_does(tokenizer):
    encoded = encode(tokenizer, CONVERSATION, max_len=512)
    prompt_ids = encode_prompt(tokenizer, CONVERSATION)

    assert encoded.input_ids[: len(prompt_ids)] == prompt_ids
    assert all(t == IGNORE_INDEX for t in encoded.labels[: len(prompt_ids)])


def test_without_a_system_prompt_the_template_default_is_used_in_both(tokenizer):
    example = ChatExample(prompt="Hi", response="Hello!")
    prompt = tokenizer.decode(encode_prompt(tokenizer, example))
    trained = tokenizer.decode(encode(tokenizer, example, max_len=512).input_ids)

    assert trained.startswith(prompt)
    assert prompt.startswith("<|im_start|>system\n")


def test_a_long_context_loses_its_oldest_tokens_and_keeps_the_answer(tokenizer):
    example = ChatExample(prompt="Tell me. " + "blah " * 300, response="Short answer.")
    encoded = encode(tokenizer, example, max_len=64)

    assert encoded.truncated
    assert len(encoded) == 64
    assert labelled_text(tokenizer, encoded) == "Short answer.<|im_end|>"
    assert tokenizer.decode(encoded.input_ids).endswith("<|im_start|>assistant\nShort answer.<|im_end|>")


def test_an_overlong_answer_is_cut_but_keeps_some_question(tokenizer):
    example = ChatExample(prompt="Count", response="one two three " * 200)
    encoded = encode(tokenizer, example, max_len=64)

    assert encoded.truncated
    assert len(encoded) == 64
    assert 0 < encoded.n_labels < 64
    assert "Count" in tokenizer.decode(encoded.input_ids)


def test_length_grouping_wastes_far_less_on_padding_than_random_order(tokenizer):
    rng = random.Random(0)
    examples = [ChatExample(prompt="Q " * rng.randint(1, 200), response="A " * rng.randint(1, 100)) for _ in range(200)]
    encoded = [encode(tokenizer, ex, max_len=512) for ex in examples]

    grouped = padding_fraction(encoded, make_batches(encoded, 8, group_by_length=True, seed=1))
    shuffled = padding_fraction(encoded, make_batches(encoded, 8, group_by_length=False, seed=1))

    assert grouped < 0.05
    assert shuffled > 0.3


@pytest.mark.parametrize("group_by_length", [True, False])
def test_batches_hold_every_example_once_and_follow_the_seed(tokenizer, group_by_length):
    encoded = [encode(tokenizer, ChatExample(prompt="x " * n, response="y"), 512) for n in range(1, 30)]

    batches = make_batches(encoded, 4, group_by_length=group_by_length, seed=3)

    assert sorted(i for batch in batches for i in batch) == list(range(29))
    assert all(len(batch) <= 4 for batch in batches)
    assert batches == make_batches(encoded, 4, group_by_length=group_by_length, seed=3)
    assert batches != make_batches(encoded, 4, group_by_length=group_by_length, seed=4)


def test_a_batch_splits_into_runs_that_waste_little_on_padding(tokenizer):
    encoded = [encode(tokenizer, ChatExample(prompt="x " * n, response="y"), 512) for n in (3, 200, 5, 190, 4, 60)]

    runs = split_by_length(range(6), encoded, max_padding=0.1)

    assert sorted(i for run in runs for i in run) == list(range(6))
    assert [sorted(run) for run in runs] == [[1, 3], [5], [0, 2, 4]]
    assert padding_fraction(encoded, runs) < 0.1


def test_collate_pads_on_the_right_and_keeps_padding_out_of_the_loss(tokenizer):
    short = encode(tokenizer, ChatExample(prompt="Hi", response="Yo"), 512)
    long = encode(tokenizer, ChatExample(prompt="Hello there, how are you?", response="Fine"), 512)

    batch = collate([short, long], pad_token_id=tokenizer.pad_token_id)

    width = len(long)
    assert batch["input_ids"].shape == (2, width)
    assert batch["attention_mask"][0].tolist() == [1] * len(short) + [0] * (width - len(short))
    assert batch["input_ids"][0, : len(short)].tolist() == short.input_ids
    assert torch.all(batch["labels"][0, len(short) :] == IGNORE_INDEX)
    assert batch["labels"][1].tolist() == long.labels
