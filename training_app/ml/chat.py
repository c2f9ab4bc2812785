"""One chat answer, streamed: the conversation rendered by the chat template, tokens decoded as they come.

``stream_chat`` calls ``on_text(text)`` with the answer so far at most every ``flush_every_s`` seconds (and at
once for the first text, so the first token shows quickly). Each text it passes starts with the one before: a
character whose bytes are not all generated yet, and a tail that may still become a stop sequence, are held
back until they are settled. ``on_text`` returns False to stop generating (the caller gave up).

temperature 0 decodes greedily (the same answer every time); otherwise it samples, seeded when ``seed`` is given.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn
from transformers import GenerationConfig, PreTrainedTokenizerBase, StoppingCriteria, StoppingCriteriaList, set_seed
from transformers.generation.streamers import BaseStreamer

from training_app.ml.generate import _stop_ids

STOP, LENGTH = "stop", "length"


class ContextTooLong(ValueError):
    """The conversation and the answer asked for do not fit in the model's context."""


@dataclass(frozen=True)
class ChatOptions:
    max_new_tokens: int | None = None  # None: as much as the context leaves, up to `limit`
    limit: int = 4096
    temperature: float = 1.0
    top_p: float = 1.0
    stop: Sequence[str] = ()
    seed: int | None = None
    flush_every_s: float = 0.2


@dataclass(frozen=True)
class ChatResult:
    text: str
    finish_reason: str  # "stop" (end of turn or a stop sequence) or "length"
    prompt_tokens: int
    completion_tokens: int


def prompt_ids(tokenizer: PreTrainedTokenizerBase, messages: Sequence[dict[str, str]]) -> list[int]:
    """The conversation as the model reads it, up to the assistant's turn header (as training renders it)."""
    text = tokenizer.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=True)
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def stream_chat(
    model: nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    messages: Sequence[dict[str, str]],
    options: ChatOptions,
    on_text: Callable[[str], bool],
) -> ChatResult:
    ids = prompt_ids(tokenizer, messages)
    context = int(getattr(model.config, "max_position_embeddings", 0) or 0) or None
    room = context - len(ids) if context else options.limit
    if options.max_new_tokens is not None and options.max_new_tokens > room:
        raise ContextTooLong(
            f"This model's maximum context length is {context} tokens. However, you requested "
            f"{len(ids) + options.max_new_tokens} tokens ({len(ids)} in the messages, {options.max_new_tokens} in "
            "the completion). Please reduce the length of the messages or completion."
        )
    if room < 1:
        raise ContextTooLong(f"This model's maximum context length is {context} tokens; the messages hold {len(ids)}.")
    max_new = options.max_new_tokens or min(room, options.limit)
    stop_ids = _stop_ids(model, tokenizer)
    follower = _Follower(tokenizer, options, on_text, stop_ids)
    sampled = options.temperature > 0
    if options.seed is not None:
        set_seed(options.seed)
    config = GenerationConfig(
        do_sample=sampled,
        temperature=options.temperature if sampled else None,
        top_p=options.top_p if sampled else None,
        top_k=None,
        num_beams=1,
        max_new_tokens=max_new,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=stop_ids,
    )
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            model.generate(
                input_ids=torch.tensor([ids], device=device),
                attention_mask=torch.ones((1, len(ids)), dtype=torch.long, device=device),
                generation_config=config,
                streamer=follower,
                stopping_criteria=StoppingCriteriaList([_Until(follower)]),
            )
    finally:
        model.train(was_training)
    text, reason = follower.final(max_new)
    return ChatResult(text, reason, len(ids), follower.generated)


class _Follower(BaseStreamer):
    """Collects the generated tokens (generate's streamer), finds stop sequences, and reports the text."""

    def __init__(
        self,
        tokenizer: PreTrainedTokenizerBase,
        options: ChatOptions,
        on_text: Callable[[str], bool],
        stop_ids: Sequence[int],
    ) -> None:
        self.tokenizer, self.options, self.on_text = tokenizer, options, on_text
        self.stop_ids = set(stop_ids)
        self.ids: list[int] = []
        self.prompt_seen = False
        self.generated = 0
        self.ended = False  # the end-of-turn token came
        self.cut: int | None = None  # where a stop sequence starts in the text
        self.halted = False  # on_text asked to stop
        self.reported = ""
        self.last_flush = 0.0

    def put(self, value: torch.Tensor) -> None:
        if not self.prompt_seen:  # generate passes the prompt first
            self.prompt_seen = True
            return
        for token in value.reshape(-1).tolist():
            self.generated += 1
            if token in self.stop_ids:
                self.ended = True
            else:
                self.ids.append(token)
        text = self._text()
        found = [at for at in (text.find(stop) for stop in self.options.stop if stop) if at >= 0]
        if found:
            self.cut = min(found)
        elif time.monotonic() - self.last_flush >= self.options.flush_every_s or not self.reported:
            self._report(self._settled(text))

    def end(self) -> None:
        pass

    def should_stop(self) -> bool:
        return self.cut is not None or self.halted

    def final(self, max_new: int) -> tuple[str, str]:
        text = self._text()
        if self.cut is not None:
            return text[: self.cut], STOP
        return text, STOP if self.ended or self.generated < max_new else LENGTH

    def _text(self) -> str:
        # No clean-up of spaces: the decoded prefix of an answer then stays a prefix of the whole answer.
        return self.tokenizer.decode(self.ids, skip_special_tokens=True, clean_up_tokenization_spaces=False)

    def _settled(self, text: str) -> str:
        text = text.rstrip("\ufffd")  # a character still missing bytes
        longest = max((len(stop) for stop in self.options.stop), default=0)
        return text[: max(len(text) - longest + 1, 0)] if longest else text

    def _report(self, text: str) -> None:
        self.last_flush = time.monotonic()
        if text == self.reported or not text.startswith(self.reported):
            return
        self.reported = text
        if not self.on_text(text):
            self.halted = True


class _Until(StoppingCriteria):
    def __init__(self, follower: _Follower) -> None:
        self.follower = follower

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs: object) -> torch.BoolTensor:
        return torch.full((input_ids.shape[0],), self.follower.should_stop(), dtype=torch.bool, device=input_ids.device)
