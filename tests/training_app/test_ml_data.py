"""Encoding chat examples: what the loss sees, truncation, batching."""

import random
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.training_app.conftest_ml import tiny_source, tiny_tokenizer
from training_app.ml.data import (
    CUT,
    IGNORE_INDEX,
    MASKED,
    TRAINED,
    ChatExample,
    collate,
    encode,
    encode_many,
    encode_prompt,
    fitted,
    make_batches,
    padding_fraction,
    split_by_length,
    token_lengths,
    token_pieces,
)
from training_app.ml.tokenizer import load_tokenizer_only

pytestmark = pytest.mark.embedded_only  # the trainer's own code: no database or broker

ROOT = Path(__file__).resolve().parents[2]
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


# Long and short, with a system prompt, earlier turns, non-ASCII text split over tokens, and cut at both ends.
VARIED = [
    CONVERSATION,
    ChatExample(prompt="Hi", response="Hello!"),
    ChatExample(prompt="Café? 😀 naïve — ok", response="Ja, gerne. 你好 🍰", system="Réponds brièvement."),
    ChatExample(prompt="Tell me. " + "blah " * 300, response="Short answer."),
    ChatExample(prompt="Count", response="one two three " * 200),
    ChatExample(prompt="  spaced\n\n  out\t", response="\n  indented\n"),
]


def test_encoding_many_at_once_gives_what_encoding_each_gives(tokenizer):
    assert encode_many(tokenizer, VARIED, 64) == [encode(tokenizer, ex, 64) for ex in VARIED]
    assert encode_many(tokenizer, [], 64) == []


@pytest.mark.parametrize("max_len", [32, 64, 100_000])
def test_counting_from_token_lengths_gives_what_encoding_gives(tokenizer, max_len):
    for (context, answer), ex in zip(token_lengths(tokenizer, VARIED), VARIED, strict=True):
        encoded = encode(tokenizer, ex, max_len)
        whole = encode(tokenizer, ex, 1_000_000)
        counted = fitted(context, answer, max_len)

        assert (counted.tokens, counted.trained, counted.full, counted.truncated) == (
            len(encoded), encoded.n_labels, len(whole), encoded.truncated,
        )  # fmt: skip
    assert fitted(*token_lengths(tokenizer, VARIED[4:5])[0], 64).truncated


@pytest.mark.parametrize("max_len", [32, 64, 100_000])
def test_token_pieces_are_the_encoding_marked_and_spell_out_the_conversation(tokenizer, max_len):
    for ex in VARIED:
        pieces = token_pieces(tokenizer, ex, max_len)
        encoded = encode(tokenizer, ex, max_len)
        kinds = [kind for _, kind in pieces]

        full = len(encode(tokenizer, ex, 1_000_000))
        assert len(pieces) == full
        assert kinds.count(TRAINED) == encoded.n_labels
        assert kinds.count(MASKED) == len(encoded) - encoded.n_labels
        assert kinds.count(CUT) == full - len(encoded)
        rendered = tokenizer.apply_chat_template(
            [*([{"role": "system", "content": ex.system}] if ex.system else []), *ex.history,
             {"role": "user", "content": ex.prompt}, {"role": "assistant", "content": ex.response}],
            tokenize=False,
        )  # fmt: skip
        assert rendered.startswith("".join(text for text, _ in pieces))
        if not encoded.truncated:
            assert "".join(text for text, kind in pieces if kind == TRAINED) == ex.response + "<|im_end|>"


def test_the_tokenizer_alone_encodes_as_the_trainers_does_without_torch():
    """The web's preflight loads only the tokenizer files; its ids and labels must be the trainer's."""
    light = load_tokenizer_only(tiny_source())

    for ex in VARIED:
        for max_len in (32, 64, 512):
            assert encode(light, ex, max_len) == encode(tiny_tokenizer(), ex, max_len)
    assert light.pad_token == tiny_tokenizer().pad_token
    code = (
        "import sys; from training_app.ml.tokenizer import load_tokenizer_only; "
        "from training_app.ml.data import ChatExample, encode; "
        f"encode(load_tokenizer_only({str(tiny_source())!r}), ChatExample(prompt='Hi', response='Yo'), 64); "
        "print('torch' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert result.stdout.strip() == "False"
