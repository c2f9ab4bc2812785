"""Chat examples to token ids: the chat template, the answers-only loss mask and batching.

Training and generation render a conversation the same way (the tokenizer's chat template, with
the prompt tokenised on its own and the answer after it), so the model is trained on exactly the
token sequence it later continues. When ``system`` is empty the template's default system prompt,
if it has one, is used in both. The loss is on the final answer and on each earlier assistant turn
of the history whose weight is 1 (the default; OpenAI's per-message ``weight``); the rest is context.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # encoding needs neither torch nor transformers' models, so the web's preflight can use it
    import torch
    from transformers import PreTrainedTokenizerBase

IGNORE_INDEX = -100
ROLES = ("user", "assistant")
# A too-long answer never pushes out the whole question: the context keeps at least this share.
MIN_CONTEXT_SHARE = 0.25
# Length grouping sorts within windows of this many batches, so batch order stays random.
GROUP_WINDOW_BATCHES = 50


class TemplateError(ValueError):
    """The chat template does not render the start of a conversation as a prefix of the whole conversation."""


@dataclass
class ChatExample:
    prompt: str
    response: str = ""
    system: str = ""
    history: list[dict] = field(default_factory=list)  # {role, content, weight?: 0 | 1 on assistant turns}
    ref: int | None = None  # the dataset example this came from
    rejected: str | None = None  # a preference pair's worse answer; ``response`` is then the chosen one


@dataclass
class Encoded:
    input_ids: list[int]
    labels: list[int]
    truncated: bool = False

    def __len__(self) -> int:
        return len(self.input_ids)

    @property
    def n_labels(self) -> int:
        return sum(label != IGNORE_INDEX for label in self.labels)


def trained_turn(turn: dict) -> bool:
    """Whether a history turn is trained on: an assistant turn without ``"weight": 0`` (OpenAI's default is 1)."""
    return turn.get("role") == "assistant" and turn.get("weight", 1) == 1


def messages(ex: ChatExample, *, with_response: bool) -> list[dict[str, str]]:
    turns = [{"role": "system", "content": ex.system}] if ex.system else []
    for turn in ex.history:
        if turn.get("role") not in ROLES or not isinstance(turn.get("content"), str):
            raise ValueError(f"a history turn needs role user or assistant and content: {turn!r}")
        if "weight" in turn and (
            turn["role"] != "assistant" or type(turn["weight"]) is not int or turn["weight"] not in (0, 1)
        ):
            raise ValueError(f"a history turn's weight is 0 or 1, on an assistant turn only: {turn!r}")
        turns.append({"role": turn["role"], "content": turn["content"]})  # the template never sees the weight
    turns.append({"role": "user", "content": ex.prompt})
    if with_response:
        turns.append({"role": "assistant", "content": ex.response})
    return turns


def render_prompt(tokenizer: PreTrainedTokenizerBase, ex: ChatExample) -> str:
    """The conversation up to and including the assistant's turn header."""
    return tokenizer.apply_chat_template(messages(ex, with_response=False), tokenize=False, add_generation_prompt=True)


def _ids(tokenizer: PreTrainedTokenizerBase, text: str) -> list[int]:
    # The template writes special tokens into the text itself; adding them again would double BOS.
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def encode_prompt(tokenizer: PreTrainedTokenizerBase, ex: ChatExample, max_len: int | None = None) -> list[int]:
    """Prompt token ids as generation sees them; over ``max_len`` the oldest tokens go."""
    ids = _ids(tokenizer, render_prompt(tokenizer, ex))
    return ids[-max_len:] if max_len else ids


def _answer_length(tokenizer: PreTrainedTokenizerBase, completion: str, answer: str) -> int:
    """How much of ``completion`` (an answer as rendered, and what follows it) is labelled: the answer and its
    end-of-turn token; what the template adds after that (a newline) cannot influence any labelled token."""
    end_of_turn = tokenizer.eos_token
    if end_of_turn:
        answer_at = completion.find(answer) if answer else 0
        cut = completion.find(end_of_turn, answer_at + len(answer) if answer_at >= 0 else 0)
        if cut >= 0:
            return cut + len(end_of_turn)
    return len(completion)


_STAND_IN = "\ue000"  # a private-use character, standing in for an opening turn's text to find where that starts


def _prefix_length(
    tokenizer: PreTrainedTokenizerBase, turns: list[dict[str, str]], full: str, *, prompting: bool, what: str
) -> int:
    """The length of ``turns`` rendered on their own (with the generation prompt when ``prompting``), which must
    be a prefix of ``full``, the whole conversation rendered: where the next answer starts, or where one ends."""
    if turns:
        text = tokenizer.apply_chat_template(turns, tokenize=False, add_generation_prompt=prompting)
    else:  # the conversation opens with the assistant: what the template puts before a stand-in's text
        stand_in = tokenizer.apply_chat_template([{"role": "assistant", "content": _STAND_IN}], tokenize=False)
        text = stand_in[: stand_in.find(_STAND_IN)] if _STAND_IN in stand_in else None
    if text is None or not full.startswith(text):
        raise TemplateError(
            f"the chat template renders {what} differently on its own and within the whole conversation, "
            "so the answer tokens cannot be told apart"
        )
    return len(text)


def _texts(tokenizer: PreTrainedTokenizerBase, ex: ChatExample) -> list[str]:
    """The conversation as the template renders it, cut where the loss starts and stops: context, answer, context,
    answer, ..., each answer a trained history turn (the assistant's, weight 1), the final answer last.

    Each answer starts where the template's generation prompt for it ends (the conversation before it rendered with
    ``add_generation_prompt``, as generation would see it) and ends after its end-of-turn token.
    """
    turns = messages(ex, with_response=True)
    full = tokenizer.apply_chat_template(turns, tokenize=False)
    first = len(turns) - len(ex.history) - 2  # where the history starts among the turns (after a system turn)
    spans = []
    for index, turn in enumerate(ex.history):
        if trained_turn(turn):
            at = first + index
            start = _prefix_length(
                tokenizer, turns[:at], full, prompting=True, what=f"the turns before history[{index}]"
            )
            end = _prefix_length(tokenizer, turns[: at + 1], full, prompting=False, what=f"history[{index}]")
            spans.append((start, start + _answer_length(tokenizer, full[start:end], turn["content"])))
    start = _prefix_length(tokenizer, turns[:-1], full, prompting=True, what="the prompt")
    spans.append((start, start + _answer_length(tokenizer, full[start:], ex.response)))
    texts, done = [], 0
    for start, end in spans:
        texts += [full[done:start], full[start:end]]
        done = end
    return texts


def _fit(context: int, answer: int, max_len: int) -> tuple[int, int]:
    """How many context tokens a pair keeps (its newest) and how many answer tokens (its first), within ``max_len``.

    Too long: the context loses its oldest tokens first, down to ``MIN_CONTEXT_SHARE`` of ``max_len``; only then
    is the end of the answer cut. The context is everything before the final answer, trained history turns
    included: a trained turn partly cut keeps its labels on the tokens left.
    """
    if context + answer <= max_len:
        return context, answer
    context_budget = max(max_len - answer, min(context, int(max_len * MIN_CONTEXT_SHARE)))
    return context_budget, max_len - context_budget


def _encoded(parts: Sequence[list[int]], max_len: int) -> Encoded:
    """The ids of ``_texts``' parts (context, answer, ..., the final answer), labelled and truncated."""
    *before, answer = parts
    ids = [token for part in before for token in part]
    labels = [token if n % 2 else IGNORE_INDEX for n, part in enumerate(before) for token in part]
    kept_context, kept_answer = _fit(len(ids), len(answer), max_len)
    dropped = len(ids) - kept_context
    return Encoded(
        input_ids=ids[dropped:] + answer[:kept_answer],
        labels=labels[dropped:] + answer[:kept_answer],
        truncated=len(ids) + len(answer) > max_len,
    )


def encode(tokenizer: PreTrainedTokenizerBase, ex: ChatExample, max_len: int) -> Encoded:
    """Token ids with the loss on the final answer and on each trained history turn (each with its end-of-turn
    token), the rest masked; truncated as ``_fit`` says."""
    return _encoded([_ids(tokenizer, text) for text in _texts(tokenizer, ex)], max_len)


def _tokenized(tokenizer: PreTrainedTokenizerBase, examples: Sequence[ChatExample]) -> list[list[list[int]]]:
    """Each example's parts' ids, untruncated; the texts tokenised in one batch (the ids ``_ids`` gives)."""
    texts = [_texts(tokenizer, ex) for ex in examples]
    flat = [text for parts in texts for text in parts]
    ids = tokenizer(flat, add_special_tokens=False)["input_ids"] if flat else []
    tokenized, done = [], 0
    for parts in texts:
        tokenized.append(ids[done : done + len(parts)])
        done += len(parts)
    return tokenized


def encode_many(tokenizer: PreTrainedTokenizerBase, examples: Sequence[ChatExample], max_len: int) -> list[Encoded]:
    """``encode`` for every example, tokenised in one batch: the same ids, in about half the time."""
    return [_encoded(parts, max_len) for parts in _tokenized(tokenizer, examples)]


def token_lengths(tokenizer: PreTrainedTokenizerBase, examples: Sequence[ChatExample]) -> list[tuple[int, ...]]:
    """Each example's token counts before truncation, part by part: context, answer, ..., the final answer (a pair
    with no trained history turn: its context and answer); ``fitted`` says what training keeps."""
    return [tuple(len(part) for part in parts) for parts in _tokenized(tokenizer, examples)]


@dataclass(frozen=True)
class Fitted:
    """What ``encode`` makes of a pair of ``full`` tokens: ``tokens`` kept, ``trained`` of them labelled."""

    tokens: int
    trained: int
    full: int
    truncated: bool


def fitted(lengths: Sequence[int], max_len: int) -> Fitted:
    """``encode``'s counts from ``token_lengths``: its ids are the kept context (its answers labelled), then the
    kept final answer (labelled)."""
    *before, answer = lengths
    context = sum(before)
    kept_context, kept_answer = _fit(context, answer, max_len)
    dropped, start, trained = context - kept_context, 0, kept_answer
    for n, length in enumerate(before):
        if n % 2:  # a trained history turn: the tokens of it that are kept
            trained += max(0, min(length, start + length - dropped))
        start += length
    full = context + answer
    return Fitted(tokens=kept_context + kept_answer, trained=trained, full=full, truncated=full > max_len)


# A token's part in training, as the preflight shows it.
MASKED, TRAINED, CUT = "masked", "trained", "cut"


def token_pieces(tokenizer: PreTrainedTokenizerBase, ex: ChatExample, max_len: int) -> list[tuple[str, str]]:
    """Every token of the rendered conversation as (text, MASKED | TRAINED | CUT), truncated as ``encode`` does.

    Joined, the texts give the conversation exactly as the chat template renders it.
    """
    *before, answer = [_pieces(tokenizer, text) for text in _texts(tokenizer, ex)]
    context = [(text, TRAINED if n % 2 else MASKED) for n, part in enumerate(before) for text in part]
    kept_context, kept_answer = _fit(len(context), len(answer), max_len)
    dropped = len(context) - kept_context
    return (
        [(text, CUT) for text, _ in context[:dropped]]
        + context[dropped:]
        + [(text, TRAINED) for text in answer[:kept_answer]]
        + [(text, CUT) for text in answer[kept_answer:]]
    )


def _pieces(tokenizer: PreTrainedTokenizerBase, text: str) -> list[str]:
    """The text of each token of ``_ids(text)``; each piece runs on to the next token's text, so none is lost."""
    try:
        offsets = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
    except NotImplementedError:  # a slow (pure Python) tokenizer has no offsets
        return [tokenizer.decode([token]) for token in _ids(tokenizer, text)]
    pieces, done = [], 0
    for _, end in offsets:
        pieces.append(text[done:end] if end > done else "")  # a character split over two tokens goes with the first
        done = max(done, end)
    if pieces:
        pieces[-1] += text[done:]
    return pieces


def make_batches(
    encoded: Sequence[Encoded], batch_size: int, *, group_by_length: bool = True, seed: int = 0
) -> list[list[int]]:
    """Batches of indices into ``encoded``, shuffled with ``seed``.

    With ``group_by_length``, examples of similar length share a batch (sorted within windows of
    ``GROUP_WINDOW_BATCHES`` batches, then the batches shuffled), so little compute goes on padding.
    """
    rng = random.Random(seed)
    order = list(range(len(encoded)))
    rng.shuffle(order)
    if group_by_length:
        window = batch_size * GROUP_WINDOW_BATCHES
        order = [
            i
            for start in range(0, len(order), window)
            for i in sorted(order[start : start + window], key=lambda i: -len(encoded[i]))
        ]
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    if group_by_length:
        rng.shuffle(batches)
    return batches


def split_by_length(batch: Sequence[int], encoded: Sequence[Encoded], max_padding: float) -> list[list[int]]:
    """Split one batch into runs of similar length that each waste at most ``max_padding`` on padding.

    Every example's loss is independent of its batch mates, so running the runs one after another
    and adding up their gradients gives the same step as the padded batch, minus the padding.
    """
    runs: list[list[int]] = []
    current: list[int] = []
    real = 0
    for i in sorted(batch, key=lambda i: -len(encoded[i])):
        if current:
            width = len(encoded[current[0]])  # the longest, as the run is sorted
            if 1 - (real + len(encoded[i])) / (width * (len(current) + 1)) > max_padding:
                runs.append(current)
                current, real = [], 0
        current.append(i)
        real += len(encoded[i])
    if current:
        runs.append(current)
    return runs


def collate(batch: Sequence[Encoded], pad_token_id: int) -> dict[str, torch.Tensor]:
    """Right-padded tensors; padding is masked out of attention and of the loss."""
    import torch

    width = max(len(item) for item in batch)
    input_ids = torch.full((len(batch), width), pad_token_id, dtype=torch.long)
    labels = torch.full((len(batch), width), IGNORE_INDEX, dtype=torch.long)
    attention_mask = torch.zeros((len(batch), width), dtype=torch.long)
    for row, item in enumerate(batch):
        input_ids[row, : len(item)] = torch.tensor(item.input_ids)
        labels[row, : len(item)] = torch.tensor(item.labels)
        attention_mask[row, : len(item)] = 1
    return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}


def padding_fraction(encoded: Sequence[Encoded], batches: Sequence[Sequence[int]]) -> float:
    """Share of the batched positions that are padding."""
    real = sum(len(encoded[i]) for batch in batches for i in batch)
    total = sum(max(len(encoded[i]) for i in batch) * len(batch) for batch in batches if batch)
    return 1 - real / total if total else 0.0
