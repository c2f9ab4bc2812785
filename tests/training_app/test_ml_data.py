"""Encoding chat examples: what the loss sees, truncation, batching."""

import copy
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
    TemplateError,
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
        {"role": "assistant", "content": "It is 2.", "weight": 0},
    ],
)
# Earlier answers with weight 1 (or none, OpenAI's default) are learnt too; weight 0 ones are context.
WEIGHTED = ChatExample(
    prompt="And Italy?",
    response="Rome.",
    system="Answer briefly.",
    history=[
        {"role": "user", "content": "Capital of France?"},
        {"role": "assistant", "content": "Paris.", "weight": 1},
        {"role": "user", "content": "Of Spain?"},
        {"role": "assistant", "content": "Lisbon?", "weight": 0},
        {"role": "user", "content": "Sure?"},
        {"role": "assistant", "content": "No: Madrid."},
    ],
)


@pytest.fixture
def tokenizer():
    return tiny_tokenizer()


def labelled_text(tokenizer, encoded):
    return tokenizer.decode([t for t in encoded.labels if t != IGNORE_INDEX])


def labelled_runs(tokenizer, encoded):
    """The text of each run of labelled tokens, in order."""
    runs, run = [], []
    for label in [*encoded.labels, IGNORE_INDEX]:
        if label != IGNORE_INDEX:
            run.append(label)
        elif run:
            runs.append(tokenizer.decode(run))
            run = []
    return runs


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


def test_trained_history_answers_are_learnt_and_the_rest_is_context(tokenizer):
    encoded = encode(tokenizer, WEIGHTED, max_len=512)

    # Paris (weight 1) and Madrid (no weight: 1), each with its end-of-turn token; not Lisbon (weight 0), no user turn
    assert labelled_runs(tokenizer, encoded) == ["Paris.<|im_end|>", "No: Madrid.<|im_end|>", "Rome.<|im_end|>"]
    labelled = [i for i, label in enumerate(encoded.labels) if label != IGNORE_INDEX]
    assert [encoded.input_ids[i] for i in labelled] == [encoded.labels[i] for i in labelled]
    end_of_turn = tokenizer.convert_tokens_to_ids("<|im_end|>")
    assert [encoded.input_ids[i] for i in labelled].count(end_of_turn) == 3
    masked = tokenizer.decode([t for t, label in zip(encoded.input_ids, encoded.labels, strict=True) if label < 0])
    for context in ("Answer briefly.", "Capital of France?", "Of Spain?", "Lisbon?", "Sure?", "And Italy?"):
        assert context in masked
    assert "Paris" not in masked
    assert "Madrid" not in masked
    # each answer is learnt after its context exactly as generation would prompt for it
    paris_prompt = encode_prompt(tokenizer, ChatExample(prompt="Capital of France?", system="Answer briefly."))
    assert encoded.input_ids[: labelled[0]] == paris_prompt


def test_truncating_a_weighted_pair_drops_its_oldest_tokens_labels_and_all(tokenizer):
    whole = encode(tokenizer, WEIGHTED, max_len=1_000_000)
    first = next(i for i, label in enumerate(whole.labels) if label != IGNORE_INDEX)

    for max_len in range(len(whole) - 1, 4, -1):
        encoded = encode(tokenizer, WEIGHTED, max_len)
        assert encoded.truncated
        assert (encoded.input_ids, encoded.labels) == (whole.input_ids[-max_len:], whole.labels[-max_len:])
    # cut inside Paris's answer: the rest of it is still learnt, the later answers whole
    runs = labelled_runs(tokenizer, encode(tokenizer, WEIGHTED, len(whole) - first - 1))
    assert runs[0] != "Paris.<|im_end|>"
    assert "Paris.<|im_end|>".endswith(runs[0])
    assert runs[1:] == ["No: Madrid.<|im_end|>", "Rome.<|im_end|>"]


def test_an_assistant_turn_that_opens_the_conversation_is_learnt(tokenizer):
    example = ChatExample(prompt="Thanks", response="Welcome.", history=[{"role": "assistant", "content": "Hi! Ask."}])
    encoded = encode(tokenizer, example, max_len=512)

    assert labelled_runs(tokenizer, encoded) == ["Hi! Ask.<|im_end|>", "Welcome.<|im_end|>"]
    assert tokenizer.decode(encoded.input_ids).startswith("<|im_start|>system\nYou are a helpful AI assistant")


def test_a_template_that_renders_earlier_answers_differently_cannot_train_on_them(tokenizer):
    odd = copy.deepcopy(tokenizer)
    odd.chat_template = (
        "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{% if m['role'] == 'assistant' and not loop.last %}"
        "(earlier) {% endif %}{{ m['content'] }}<|im_end|>\n{% endfor %}"
        "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    )

    with pytest.raises(TemplateError, match=r"history\[1\]"):
        encode(odd, WEIGHTED, 512)
    # as context such a turn is only text: with every earlier answer at weight 0 the pair encodes
    as_context = [{**turn, "weight": 0} if turn["role"] == "assistant" else turn for turn in WEIGHTED.history]
    encoded = encode(odd, ChatExample(prompt="And Italy?", response="Rome.", history=as_context), 512)
    assert labelled_runs(odd, encoded) == ["Rome.<|im_end|>"]
    assert "(earlier) Paris." in odd.decode(encoded.input_ids)


@pytest.mark.parametrize(
    "turn", [{"role": "user", "content": "Hi", "weight": 1}, {"role": "assistant", "content": "Yo", "weight": 2}]
)
def test_a_weight_off_an_assistant_turn_or_not_0_or_1_is_refused(tokenizer, turn):
    with pytest.raises(ValueError, match="weight is 0 or 1"):
        encode(tokenizer, ChatExample(prompt="Hi", response="Yo", history=[turn]), 512)


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
    WEIGHTED,
    ChatExample(prompt="Go on. " + "blah " * 40, response="Done.", history=[*WEIGHTED.history] * 3),
    ChatExample(prompt="Thanks", response="You're welcome.", history=[{"role": "assistant", "content": "Hi! Ask me."}]),
    ChatExample(prompt="Count", response="one two three " * 50, history=WEIGHTED.history),
]


def trained_text(ex):
    """What the loss sees of a whole pair: each trained answer with its end-of-turn token."""
    answers = [turn["content"] for turn in ex.history if turn["role"] == "assistant" and turn.get("weight", 1)]
    return "".join(answer + "<|im_end|>" for answer in [*answers, ex.response])


def test_encoding_many_at_once_gives_what_encoding_each_gives(tokenizer):
    assert encode_many(tokenizer, VARIED, 64) == [encode(tokenizer, ex, 64) for ex in VARIED]
    assert encode_many(tokenizer, [], 64) == []


@pytest.mark.parametrize("max_len", [32, 64, 100_000])
def test_counting_from_token_lengths_gives_what_encoding_gives(tokenizer, max_len):
    for lengths, ex in zip(token_lengths(tokenizer, VARIED), VARIED, strict=True):
        encoded = encode(tokenizer, ex, max_len)
        whole = encode(tokenizer, ex, 1_000_000)
        counted = fitted(lengths, max_len)

        assert (counted.tokens, counted.trained, counted.full, counted.truncated) == (
            len(encoded), encoded.n_labels, len(whole), encoded.truncated,
        )  # fmt: skip
    assert fitted(token_lengths(tokenizer, VARIED[4:5])[0], 64).truncated
    assert len(token_lengths(tokenizer, [WEIGHTED])[0]) == 6  # context, Paris, context, Madrid, context, Rome


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
            assert "".join(text for text, kind in pieces if kind == TRAINED) == trained_text(ex)


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
