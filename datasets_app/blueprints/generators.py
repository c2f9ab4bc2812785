"""Generator backends: models that draft answers to chat prompts, chosen by key from settings.GENERATORS.

Two configured backends: the local base model (training_app.generation.LocalGenerator, loaded on a worker) and
any OpenAI-compatible chat-completions endpoint (OpenAIChatGenerator). The API key stays on the server: it is
sent to the endpoint only, never shown in choices or errors. A workspace adds its own choices through
settings.GENERATOR_PROVIDERS (its fine-tuned models, named `ft:...`), so this app imports no training code.
"""

from __future__ import annotations

import json
import re
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from django.conf import settings
from django.utils.module_loading import import_string

from datasets_app.curation.content import normalize

if TYPE_CHECKING:
    from datasets_app.models import Workspace

MAX_CONCURRENT_REQUESTS = 4
RETRIES = 2
RETRY_BACKOFF_S = 0.5
RETRY_STATUSES = frozenset({408, 429})  # plus every 5xx
ERROR_MESSAGE_CHARS = 300
MAX_RESPONSE_BYTES = 16 << 20  # one chat completion; a body past this is refused, never held whole


class GeneratorError(Exception):
    """A generator could not answer; the message says why in words a team lead can act on."""


@dataclass(frozen=True)
class ChatRequest:
    prompt: str
    system_prompt: str = ""
    history: tuple[dict, ...] = ()  # earlier turns: {"role": "user" | "assistant", "content": ...}

    def messages(self) -> list[dict[str, str]]:
        system = [{"role": "system", "content": self.system_prompt}] if self.system_prompt else []
        turns = [{"role": turn["role"], "content": turn["content"]} for turn in self.history]
        return [*system, *turns, {"role": "user", "content": self.prompt}]


class Generator:
    """Drafts one answer per request; a backend overrides ``generate``."""

    kind = "base"  # what the list of generators calls it: base | endpoint | fine_tuned

    def __init__(self, *, key: str, config: Mapping[str, Any]) -> None:
        self.key = key
        self.model_name = str(config["MODEL"])
        self.label = _label(key, config)

    @property
    def source(self) -> str:
        """What a drafted pair records as its source."""
        return f"model:{self.model_name}"

    def generate(self, requests: Sequence[ChatRequest], *, max_new_tokens: int = 256) -> list[str]:
        """One stripped answer per request, in order."""
        raise NotImplementedError


def _label(key: str, config: Mapping[str, Any]) -> str:
    return str(config.get("LABEL") or config.get("MODEL") or key)


def generator_get(key: str | None = None, *, workspace: Workspace | None = None) -> Generator:
    """The generator configured under ``key`` (default: settings.DEFAULT_GENERATOR), or one of the workspace's own
    (its fine-tuned models) when a workspace is given."""
    key = key or settings.DEFAULT_GENERATOR
    config = settings.GENERATORS.get(key)
    if config is not None:
        backend = import_string(config["BACKEND"])
        return backend(key=key, config=config)
    if workspace is not None:
        for generator in workspace_generators(workspace):
            if generator.key == key:
                return generator
    if key.startswith("ft:"):
        raise GeneratorError(
            f"the fine-tuned model {key!r} is not available in this workspace: "
            "it was deleted, its run did not succeed, or no model has that name"
        )
    known = ", ".join(settings.GENERATORS) or "none"
    raise GeneratorError(f"unknown generator {key!r}; configured generators: {known}")


def workspace_generators(workspace: Workspace) -> list[Generator]:
    """The workspace's own generators, from each of settings.GENERATOR_PROVIDERS (``provider(*, workspace)``)."""
    return [
        generator for path in settings.GENERATOR_PROVIDERS for generator in import_string(path)(workspace=workspace)
    ]


@dataclass(frozen=True)
class GeneratorInfo:
    key: str
    label: str
    kind: str  # base | endpoint | fine_tuned


def generator_list(*, workspace: Workspace | None = None) -> list[GeneratorInfo]:
    """Every generator the workspace may draft with: the configured ones, then its own; no URLs or keys, and
    nothing is loaded."""
    configured = [
        GeneratorInfo(key, _label(key, config), import_string(config["BACKEND"]).kind)
        for key, config in settings.GENERATORS.items()
    ]
    own = workspace_generators(workspace) if workspace is not None else []
    return configured + [GeneratorInfo(generator.key, generator.label, generator.kind) for generator in own]


def generator_choices(*, workspace: Workspace | None = None) -> list[tuple[str, str]]:
    """(key, label) of every generator the workspace may use, for forms and the API."""
    return [(choice.key, choice.label) for choice in generator_list(workspace=workspace)]


# --- an OpenAI-compatible chat-completions endpoint


class _Retryable(Exception):
    pass


class OpenAIChatGenerator(Generator):
    """``POST {BASE_URL}/chat/completions``, up to four requests at a time, retrying 429, 5xx and lost connections."""

    kind = "endpoint"

    def __init__(self, *, key: str, config: Mapping[str, Any]) -> None:
        super().__init__(key=key, config=config)
        self.url = str(config["BASE_URL"]).rstrip("/") + "/chat/completions"
        if urlsplit(self.url).scheme not in ("http", "https"):
            raise GeneratorError(f"generator {key!r}: BASE_URL must start with http:// or https://")
        self.api_key = str(config.get("API_KEY") or "")
        self.timeout = float(config.get("TIMEOUT") or 60)
        self.temperature = float(config.get("TEMPERATURE") or 0)

    def generate(self, requests: Sequence[ChatRequest], *, max_new_tokens: int = 256) -> list[str]:
        if not requests:
            return []
        pool = ThreadPoolExecutor(max_workers=min(MAX_CONCURRENT_REQUESTS, len(requests)))
        try:
            return list(pool.map(lambda request: self._answer(request, max_new_tokens), requests))
        finally:
            pool.shutdown(cancel_futures=True)  # after a failure, send no more requests

    def _answer(self, request: ChatRequest, max_new_tokens: int) -> str:
        body = {
            "model": self.model_name,
            "messages": request.messages(),
            "max_tokens": max_new_tokens,
            "temperature": self.temperature,
        }
        attempt = 0
        while True:
            try:
                return _content(self._post(body), self.url)
            except _Retryable as error:
                attempt += 1
                if attempt > RETRIES:
                    raise GeneratorError(f"{error} (tried {attempt} times)") from None
                time.sleep(RETRY_BACKOFF_S * attempt)

    def _post(self, body: dict[str, Any]) -> Any:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        # The scheme is checked in __init__, so urllib opens only http(s) here.
        request = urllib.request.Request(self.url, data=json.dumps(body).encode(), headers=headers, method="POST")  # noqa: S310
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310
                raw = response.read(MAX_RESPONSE_BYTES + 1)
        except urllib.error.HTTPError as error:
            raise self._http_error(error) from None
        except (urllib.error.URLError, TimeoutError, ConnectionError) as error:
            reason = getattr(error, "reason", error)
            raise _Retryable(f"could not reach {self.url}: {str(reason) or type(reason).__name__}") from None
        if len(raw) > MAX_RESPONSE_BYTES:
            raise GeneratorError(f"{self.url} answered with more than {MAX_RESPONSE_BYTES >> 20} MB; not read further")
        try:
            return json.loads(raw)
        except ValueError:
            raise GeneratorError(f"{self.url} answered with a body that is not JSON") from None

    def _http_error(self, error: urllib.error.HTTPError) -> Exception:
        message = f"{self.url} answered HTTP {error.code}: {self._server_message(error)}"
        if error.code in RETRY_STATUSES or error.code >= 500:
            return _Retryable(message)
        return GeneratorError(message)

    def _server_message(self, error: urllib.error.HTTPError) -> str:
        text = error.read(64 * 1024).decode("utf-8", "replace")
        try:
            detail = json.loads(text).get("error", text)
            text = detail.get("message", str(detail)) if isinstance(detail, dict) else str(detail)
        except (ValueError, AttributeError):
            pass
        text = " ".join(text.split())[:ERROR_MESSAGE_CHARS] or error.reason or "no message"
        # Some servers echo what they were sent; the key must not reach a page or a log.
        return text.replace(self.api_key, "***") if self.api_key else text


def _content(data: Any, url: str) -> str:
    try:
        content = data["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError):
        content = None
    if not isinstance(content, str):
        raise GeneratorError(f"{url} answered without choices[0].message.content")
    return content.strip()


# --- paraphrasing prompts

PARAPHRASE_SYSTEM = "You rewrite requests in other words. You never answer them. Reply with the rewritten request only."
_EXAMPLE_REQUESTS = ("How do I make bread at home?", "Write a short poem about the sea.")
# One instruction per rewording, each with its own worked examples, so a greedy model still varies.
PARAPHRASE_STYLES = (
    ("Reword this request, keeping its meaning", "What is the way to bake bread in my own kitchen?", "Compose a brief poem about the ocean."),
    ("Ask for the same thing in fewer words", "How to make homemade bread?", "Short sea poem, please."),
    ("Ask for the same thing more politely", "Could you please explain how I can make bread at home?", "Could you please write a short poem about the sea?"),
    ("Ask for the same thing casually", "Hey, how do I bake my own bread?", "Write me a little poem about the sea, would you?"),
    ("Ask for the same thing in more detail", "What are the steps to make a loaf of bread at home from scratch?", "Write a short poem of a few lines about the sea and its waves."),
    ("Ask for the same thing as a beginner would", "I have never baked before. How can I make bread at home?", "I'm new to poetry. Can you write a short poem about the sea?"),
)  # fmt: skip
_PREFIX = re.compile(
    r"^(?:here(?:'s| is)\b[^:]{0,60}:|(?:[a-z]+\s+){0,2}"
    r"(?:paraphrased?|paraphrasing|reworded|rewording|rewritten|rewrite|rephrased?|rephrasing|request|prompt|question|version)"
    r"\s*\d*\s*:)\s*",
    re.IGNORECASE,
)
_WRAPPING = "\"'“”‘’`*_ "


def paraphrase_prompts(generator: Generator, prompts: Sequence[str], n: int, *, start: int = 0) -> list[list[str]]:
    """For each prompt up to ``n`` distinct rewordings, never the prompt itself, in the styles from ``start`` on."""
    styles = PARAPHRASE_STYLES[start : start + max(n, 0)]
    requests = [_paraphrase_request(style, prompt) for prompt in prompts for style in styles]
    answers = generator.generate(requests, max_new_tokens=96) if requests else []
    per_prompt = len(styles)
    return [
        _distinct(prompt, answers[index * per_prompt : (index + 1) * per_prompt])
        for index, prompt in enumerate(prompts)
    ]


def _ask(instruction: str, prompt: str) -> str:
    return f'{instruction}. Do not answer it.\n\nRequest: "{prompt}"'


def _paraphrase_request(style: tuple[str, str, str], prompt: str) -> ChatRequest:
    instruction, *worked = style
    history: list[dict[str, str]] = []
    for example, rewording in zip(_EXAMPLE_REQUESTS, worked, strict=True):
        history += [
            {"role": "user", "content": _ask(instruction, example)},
            {"role": "assistant", "content": rewording},
        ]
    return ChatRequest(prompt=_ask(instruction, prompt), system_prompt=PARAPHRASE_SYSTEM, history=tuple(history))


def _distinct(prompt: str, answers: Sequence[str]) -> list[str]:
    seen = {normalize(prompt)}
    kept = []
    for answer in answers:
        rewording = clean_rewording(answer)
        if rewording and normalize(rewording) not in seen:
            seen.add(normalize(rewording))
            kept.append(rewording)
    return kept


def clean_rewording(answer: str) -> str:
    """The first real line of a model's rewording, without "Paraphrase:"-style labels or wrapping quotes."""
    for line in answer.splitlines():
        if line.rstrip(_WRAPPING).endswith(":"):
            continue  # an introduction such as "Sure, here is a rewording:"
        text = line.strip(_WRAPPING)
        while (stripped := _PREFIX.sub("", text, count=1).strip(_WRAPPING)) != text:
            text = stripped
        if text:
            return text
    return ""
