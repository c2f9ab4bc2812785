"""POST /v1/chat/completions: a worker answers; this view follows the answer's row and sends it, whole or streamed.

A streamed answer is server-sent events in OpenAI's `chat.completion.chunk` format, ending with `data: [DONE]`. The
response starts once the worker has written the first text (or failed), so an error before any text still gets
its own status code; an error after that is sent as an event with an `error`, which the client raises.
"""

import json
from collections.abc import Iterator

from django.http import StreamingHttpResponse
from rest_framework.parsers import JSONParser
from rest_framework.request import Request
from rest_framework.response import Response

from openai_app import catalog, completions
from openai_app.api.common import V1View
from openai_app.api.errors import OpenAIError, model_not_found
from openai_app.completions import CANCELLED, CONTEXT_TOO_LONG, TIMEOUT
from openai_app.models import ChatCompletion, CompletionStatus


class ChatCompletionsView(V1View):
    parser_classes = [JSONParser]

    def post(self, request: Request) -> Response | StreamingHttpResponse:
        ask = completions.chat_ask(request.data)
        access = self.access(request)
        model = catalog.model_get(workspace=access.workspace, model=ask.model)
        if model is None:
            raise model_not_found(ask.model)
        completion = completions.completion_create(access=access, model=model, ask=ask)
        rows = completions.completion_follow(completion)
        if not ask.stream:
            *_, row = rows
            if row.status != CompletionStatus.SUCCEEDED:
                raise _error(row)
            return Response(_completion_object(completion, row))
        first = next(rows)
        while not first.finished and not first.text:
            first = next(rows)
        if first.status == CompletionStatus.FAILED:
            raise _error(first)
        response = StreamingHttpResponse(_events(completion, first, rows, ask.include_usage))
        response["Content-Type"] = "text/event-stream; charset=utf-8"
        response["Cache-Control"] = "no-cache"
        response["X-Accel-Buffering"] = "no"  # a proxy in front must pass each event on at once
        return response


def _error(row: ChatCompletion) -> OpenAIError:
    if row.error_code == CONTEXT_TOO_LONG:
        return OpenAIError(row.error, param="messages", code=CONTEXT_TOO_LONG)
    if row.error_code == TIMEOUT:
        return OpenAIError(row.error, status_code=504, type="timeout", code=TIMEOUT)
    return OpenAIError(row.error or "The model could not answer.", status_code=500, type="server_error", code=None)


def _head(completion: ChatCompletion) -> dict:
    return {
        "id": completion.public_id,
        "created": int(completion.created_at.timestamp()),
        "model": completion.model,
        "system_fingerprint": None,
    }


def _usage(row: ChatCompletion) -> dict:
    return {
        "prompt_tokens": row.prompt_tokens,
        "completion_tokens": row.completion_tokens,
        "total_tokens": row.prompt_tokens + row.completion_tokens,
    }


def _completion_object(completion: ChatCompletion, row: ChatCompletion) -> dict:
    message = {"role": "assistant", "content": row.text, "refusal": None}
    choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": row.finish_reason}
    return {**_head(completion), "object": "chat.completion", "choices": [choice], "usage": _usage(row)}


def _events(
    completion: ChatCompletion, first: ChatCompletion, rows: Iterator[ChatCompletion], include_usage: bool
) -> Iterator[str]:
    """The answer as server-sent events: the role, each new part of the text, the finish reason, [DONE]."""
    head = {**_head(completion), "object": "chat.completion.chunk"}
    extra = {"usage": None} if include_usage else {}

    def chunk(delta: dict, finish_reason: str | None = None) -> str:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        return _event({**head, "choices": [choice], **extra})

    sent, row = 0, first
    try:
        yield chunk({"role": "assistant", "content": ""})
        for row in _chain(first, rows):
            if len(row.text) > sent and row.status != CompletionStatus.FAILED:
                yield chunk({"content": row.text[sent:]})
                sent = len(row.text)
        if row.status == CompletionStatus.FAILED:
            yield _event(_error(row).body)
            return
        yield chunk({}, row.finish_reason)
        if include_usage:
            yield _event({**head, "choices": [], "usage": _usage(row)})
        yield "data: [DONE]\n\n"
    finally:  # the client went away (or the stream ended): a worker still generating stops
        completions.completion_give_up(
            completion_id=completion.pk, code=CANCELLED, error="The client stopped reading the stream."
        )


def _chain(first: ChatCompletion, rows: Iterator[ChatCompletion]) -> Iterator[ChatCompletion]:
    yield first
    yield from rows


def _event(body: dict) -> str:
    return f"data: {json.dumps(body, ensure_ascii=False)}\n\n"
