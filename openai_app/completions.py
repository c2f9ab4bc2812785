"""Chat completions: what a request asks, its row, the worker that answers it, and the request that waits for it.

The web process never loads a model. A request is checked here, written as a ChatCompletion row and its task sent
(the outbox: a lost send is sent again by the dispatcher). A worker claims the row, loads the model (its cache of
recently used models keeps it for the next request) and writes the answer into the row as it generates it, every
CHAT_FLUSH_S. The request follows the row: a streamed one sends each new part of the text as it appears, a plain
one waits for the end. A request that sees no progress for CHAT_TIMEOUT_S gives up and fails the row, so a worker
still generating stops at its next write; a sweeper fails rows whose request went away with its web process.
"""

import logging
import math
import secrets
import string
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from datasets_app.jobs.outbox import dispatch_due, dispatch_on_commit
from openai_app.catalog import ModelInfo
from openai_app.keys import KeyAccess
from openai_app.models import ChatCompletion, CompletionStatus

logger = logging.getLogger(__name__)

TASK = "openai_app.tasks.chat_completion_task"
ID_CHARS = string.ascii_letters + string.digits
ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant"}
MAX_MESSAGES = 2048
MAX_STOPS = 4  # as OpenAI
SEED_RANGE = 2**63
# Accepted and ignored: they change nothing about the answer.
IGNORED = {"user", "store", "metadata", "service_tier", "parallel_tool_calls"}
HANDLED = {
    "model", "messages", "max_tokens", "max_completion_tokens", "temperature", "top_p", "stop", "seed", "n",
    "stream", "stream_options",
}  # fmt: skip
# The codes a failed row may carry, and how the request answers them.
CONTEXT_TOO_LONG, TIMEOUT, CANCELLED, WORKER_FAILED = "context_length_exceeded", "timeout", "cancelled", "server_error"


@dataclass
class ChatAsk:
    """A checked request: the text of each message, the generation options, and how to answer."""

    model: str
    messages: list[dict[str, str]]
    options: dict[str, Any]
    stream: bool = False
    include_usage: bool = False


# --- what a request asks


def chat_ask(body: Any) -> ChatAsk:
    """The request body checked; raises ValidationError naming the first field at fault (OpenAI's `param`)."""
    if not isinstance(body, dict):
        raise ValidationError("The body must be a JSON object.")
    problems: dict[str, str] = {}
    model = body.get("model")
    if not isinstance(model, str) or not model:
        problems["model"] = "you must provide a model parameter (a model id from /v1/models)"
    messages = _messages(body.get("messages"), problems)
    options = {
        "max_new_tokens": _max_tokens(body, problems),
        "limit": settings.CHAT_MAX_TOKENS,
        "temperature": _number(body, "temperature", 1.0, problems, low=0, high=2, low_open=False),
        "top_p": _number(body, "top_p", 1.0, problems, low=0, high=1, low_open=True),
        "stop": _stops(body.get("stop"), problems),
        "seed": _seed(body.get("seed"), problems),
        "flush_every_s": settings.CHAT_FLUSH_S,
    }
    n = body.get("n")
    if n is not None and (type(n) is not int or n != 1):
        problems["n"] = f"only n = 1 is supported (one answer per request); got {n!r}"[:200]
    stream = body.get("stream")
    if stream is not None and type(stream) is not bool:
        problems["stream"] = "must be true or false"
    include_usage = _stream_options(body.get("stream_options"), bool(stream), problems)
    for name, value in body.items():
        if name not in HANDLED and name not in IGNORED and value not in (None, False, 0, [], {}, ""):
            problems.setdefault(name, "is not supported by this server")
    if problems:
        raise ValidationError({name: [message] for name, message in problems.items()})
    return ChatAsk(model, messages, options, stream=bool(stream), include_usage=include_usage)


def _messages(value: Any, problems: dict[str, str]) -> list[dict[str, str]]:
    if type(value) is not list or not value:
        problems["messages"] = "must be a non-empty list of messages" if value is not None else "is required"
        return []
    if len(value) > MAX_MESSAGES:
        problems["messages"] = f"at most {MAX_MESSAGES} messages (got {len(value)})"
        return []
    result, total = [], 0
    for index, message in enumerate(value):
        where = f"messages[{index}]"
        if type(message) is not dict:
            problems.setdefault(where, "must be an object with role and content")
            continue
        role = message.get("role")
        if role not in ROLES:
            shown = role if type(role) is str else type(role).__name__
            problems.setdefault(f"{where}.role", f"must be system, developer, user or assistant (got {shown!r})"[:200])
            continue
        text = _content(message.get("content"), f"{where}.content", problems)
        total += len(text)
        result.append({"role": ROLES[role], "content": text})
    if total > settings.PAIR_TOTAL_MAX_CHARS:
        problems.setdefault("messages", f"at most {settings.PAIR_TOTAL_MAX_CHARS} characters in all (got {total})")
    if result and all(message["role"] == "system" for message in result):
        problems.setdefault("messages", "needs a user (or assistant) message, not only system messages")
    return result


def _content(value: Any, where: str, problems: dict[str, str]) -> str:
    """A message's text: a string, or OpenAI's list of text parts (joined by newlines)."""
    if type(value) is list:
        texts = []
        for index, part in enumerate(value):
            kind = part.get("type") if type(part) is dict else None
            if kind != "text" or type(part.get("text")) is not str:
                problems.setdefault(
                    f"{where}[{index}]", 'only text parts are supported: {"type": "text", "text": "..."}'
                )
                return ""
            texts.append(part["text"])
        value = "\n".join(texts)
    if type(value) is not str:
        problems.setdefault(where, "must be a string or a list of text parts")
        return ""
    if "\x00" in value:
        problems.setdefault(where, "may not contain NUL characters")
    elif len(value) > settings.PAIR_TEXT_MAX_CHARS:
        problems.setdefault(where, f"at most {settings.PAIR_TEXT_MAX_CHARS} characters (got {len(value)})")
    return value


def _max_tokens(body: dict, problems: dict[str, str]) -> int | None:
    name = "max_completion_tokens" if body.get("max_completion_tokens") is not None else "max_tokens"
    value = body.get(name)
    if value is None:
        return None
    if type(value) is not int or not 1 <= value <= settings.CHAT_MAX_TOKENS:
        problems[name] = f"must be a whole number from 1 to {settings.CHAT_MAX_TOKENS} (got {value!r})"[:200]
        return None
    return value


def _number(body: dict, name: str, default: float, problems: dict[str, str], **bounds: Any) -> float:
    value = body.get(name)
    if value is None:
        return default
    low, high, low_open = bounds["low"], bounds["high"], bounds["low_open"]
    number = float(value) if type(value) in (int, float) else math.nan
    if not (low < number <= high if low_open else low <= number <= high):
        interval = f"{'(' if low_open else '['}{low}, {high}]"
        problems[name] = f"must be a number in {interval} (got {value!r})"[:200]
        return default
    return number


def _stops(value: Any, problems: dict[str, str]) -> list[str]:
    stops = [value] if type(value) is str else value
    if stops is None:
        return []
    if type(stops) is not list or len(stops) > MAX_STOPS or any(type(s) is not str or not s for s in stops):
        problems["stop"] = f"must be a string or a list of at most {MAX_STOPS} non-empty strings"
        return []
    return stops


def _seed(value: Any, problems: dict[str, str]) -> int | None:
    if value is None:
        return None
    if type(value) is not int or not -SEED_RANGE <= value < SEED_RANGE:
        problems["seed"] = "must be a whole number (a 64-bit integer)"
        return None
    return value % 2**32  # what the random generators take


def _stream_options(value: Any, stream: bool, problems: dict[str, str]) -> bool:
    if value is None:
        return False
    if not stream:
        problems["stream_options"] = "is only allowed when stream is true"
    elif type(value) is not dict or type(value.get("include_usage", False)) is not bool:
        problems["stream_options"] = 'must be an object like {"include_usage": true}'
    else:
        return bool(value.get("include_usage"))
    return False


# --- writes: the request


def new_completion_id() -> str:
    return "chatcmpl-" + "".join(secrets.choice(ID_CHARS) for _ in range(24))


@transaction.atomic
def completion_create(*, access: KeyAccess, model: ModelInfo, ask: ChatAsk) -> ChatCompletion:
    """Queue a chat completion for a worker (any key of the workspace); its task is sent once this commits."""
    run = model.run
    completion = ChatCompletion.objects.create(
        public_id=new_completion_id(),
        workspace=access.workspace,
        api_key=access.key,
        model=model.id,
        base_model=run.base_model if run is not None else model.id,
        run=run,
        messages=ask.messages,
        options=ask.options,
    )
    dispatch_on_commit(completion, TASK)
    return completion


def completion_give_up(*, completion_id: int, error: str, code: str) -> bool:
    """Fail a completion nobody waits for any more; a worker generating it stops at its next write."""
    now = timezone.now()
    unfinished = [CompletionStatus.QUEUED, CompletionStatus.RUNNING]
    return bool(
        ChatCompletion.objects.filter(pk=completion_id, status__in=unfinished).update(
            status=CompletionStatus.FAILED, finished_at=now, updated_at=now, error=error, error_code=code
        )
    )


def completion_follow(completion: ChatCompletion) -> Iterator[ChatCompletion]:
    """The row each time its text grows or it finishes (read every CHAT_POLL_S), until it has finished.

    Without progress for CHAT_TIMEOUT_S the row is failed with the code `timeout`, and that is the last one.
    """
    fields = ["status", "text", "finish_reason", "prompt_tokens", "completion_tokens", "error", "error_code"]
    seen_text, seen_status = "", ""
    last_progress = time.monotonic()
    while True:
        row = ChatCompletion.objects.only(*fields).filter(pk=completion.pk).first()
        if row is None:  # deleted meanwhile (its workspace was)
            yield ChatCompletion(status=CompletionStatus.FAILED, error="The completion was deleted.")
            return
        if row.finished:
            yield row
            return
        if row.text != seen_text or row.status != seen_status:
            seen_text, seen_status, last_progress = row.text, row.status, time.monotonic()
            yield row
        elif time.monotonic() - last_progress > settings.CHAT_TIMEOUT_S:
            waited = f"{settings.CHAT_TIMEOUT_S:.0f}"
            completion_give_up(
                completion_id=completion.pk,
                code=TIMEOUT,
                error=f"No worker answered within {waited} s (all busy, none running, or one stopped); try again.",
            )
        else:
            time.sleep(settings.CHAT_POLL_S)


# --- writes: the worker


def completion_claim(completion_id: int) -> ChatCompletion | None:
    """The queued completion, now running; None when another delivery took it or its request gave up."""
    with transaction.atomic():
        rows = ChatCompletion.objects.select_for_update(of=("self",)).select_related("run")
        row = rows.filter(pk=completion_id).first()
        if row is None or row.status != CompletionStatus.QUEUED:
            return None
        row.status, row.started_at = CompletionStatus.RUNNING, timezone.now()
        row.save(update_fields=["status", "started_at", "updated_at"])
        return row


def completion_answer(*, completion_id: int) -> None:
    """Generate a queued completion's answer, writing it into the row as it grows; at most once."""
    from training_app.inference import chat_answer
    from training_app.ml.chat import ContextTooLong

    row = completion_claim(completion_id)
    if row is None:
        return
    running = ChatCompletion.objects.filter(pk=row.pk, status=CompletionStatus.RUNNING)

    def write(text: str) -> bool:  # False once the request has given up: generating stops
        return bool(running.update(text=text, updated_at=timezone.now()))

    try:
        result = chat_answer(
            base_model=row.base_model, run=row.run, messages=row.messages, options=row.options, on_text=write
        )
    except ContextTooLong as error:
        _fail(running, str(error), CONTEXT_TOO_LONG)
    except Exception as error:
        logger.exception("chat completion %s failed", row.public_id)
        _fail(running, f"The model could not answer ({type(error).__name__}): {error}"[:2000], WORKER_FAILED)
    else:
        now = timezone.now()
        running.update(
            status=CompletionStatus.SUCCEEDED, finished_at=now, updated_at=now, text=result.text,
            finish_reason=result.finish_reason, prompt_tokens=result.prompt_tokens,
            completion_tokens=result.completion_tokens,
        )  # fmt: skip


def _fail(running: Any, error: str, code: str) -> None:
    now = timezone.now()
    running.update(status=CompletionStatus.FAILED, finished_at=now, updated_at=now, error=error, error_code=code)


# --- periodic


def completion_sweep(*, now: Any = None) -> int:
    """Fail unfinished completions without progress well past CHAT_TIMEOUT_S: the request waiting for them went
    away with its web process (a live request fails its own row)."""
    now = now or timezone.now()
    stale = now - timedelta(seconds=settings.CHAT_TIMEOUT_S * 2 + 60)
    unfinished = [CompletionStatus.QUEUED, CompletionStatus.RUNNING]
    return ChatCompletion.objects.filter(status__in=unfinished, updated_at__lt=stale).update(
        status=CompletionStatus.FAILED, finished_at=now, updated_at=now, error_code=TIMEOUT,
        error="Nobody answered or waited for this completion any more (a web server or worker stopped).",
    )  # fmt: skip


def completion_dispatch() -> int:
    """Send the tasks of queued completions that never reached the broker or were lost by it (the outbox)."""
    return dispatch_due(ChatCompletion, TASK)
