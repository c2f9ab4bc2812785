"""POST /v1/chat/completions through the real `openai` client, a live server and a real worker on the tiny model."""

import io
import json
import zipfile

import openai
import pytest
from django.core.files.base import ContentFile
from django.utils import timezone

from openai_app.completions import TIMEOUT
from openai_app.models import ChatCompletion, CompletionStatus
from tests.factories import DatasetFactory, runs_on
from tests.training_app.conftest import TINY
from training_app.ml.tokenizer import load_tokenizer_only

pytestmark = pytest.mark.django_db(transaction=True)

ANSWER_TIMEOUT_S = 120  # a worker loads the model on its first request
QUESTION = [
    {"role": "system", "content": "Answer briefly."},
    {
        "role": "user",
        "content": [{"type": "text", "text": "What is the capital"}, {"type": "text", "text": "of Peru?"}],
    },
]


@pytest.fixture(scope="session")
def tiny_source():
    """The tiny model in this machine's cache (the worker builds it there when missing)."""
    from training_app.execution import base_model_dir

    return base_model_dir(TINY)


@pytest.fixture
def client(client_with, annotator_key):
    return client_with(annotator_key, timeout=ANSWER_TIMEOUT_S)


def prompt_tokens(source, messages) -> int:
    """The conversation's tokens as the tiny model's tokenizer counts them (text parts joined by newlines)."""
    tokenizer = load_tokenizer_only(source)
    plain = [
        {"role": m["role"], "content": m["content"] if isinstance(m["content"], str) else "\n".join(p["text"] for p in m["content"])}
        for m in messages
    ]  # fmt: skip
    text = tokenizer.apply_chat_template(plain, tokenize=False, add_generation_prompt=True)
    return len(tokenizer(text, add_special_tokens=False)["input_ids"])


def streamed(client, **ask) -> tuple[str, list]:
    chunks = list(client.chat.completions.create(stream=True, **ask))
    return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices), chunks


@pytest.mark.worker
def test_a_base_model_answers_plain_and_streamed_alike_with_usage_and_finish_reasons(
    celery_worker, client, tiny_source
):
    ask = {"model": TINY, "messages": QUESTION, "max_tokens": 12, "temperature": 0}

    answer = client.chat.completions.create(**ask)

    assert answer.id.startswith("chatcmpl-")
    assert (answer.object, answer.model) == ("chat.completion", TINY)
    assert answer.created > 0
    (choice,) = answer.choices
    assert choice.message.role == "assistant"
    text = choice.message.content
    assert text
    assert choice.finish_reason == "length"  # the tiny random model never ends its turn within 12 tokens
    assert answer.usage.completion_tokens == 12
    assert answer.usage.prompt_tokens == prompt_tokens(tiny_source, QUESTION)
    assert answer.usage.total_tokens == answer.usage.prompt_tokens + 12

    # streamed, the same greedy answer arrives in parts
    joined, chunks = streamed(client, **ask, stream_options={"include_usage": True})
    assert joined == text
    assert chunks[0].choices[0].delta.role == "assistant"
    assert {chunk.id for chunk in chunks} == {chunks[0].id}
    assert chunks[0].id != answer.id
    assert all(chunk.object == "chat.completion.chunk" for chunk in chunks)
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["length"]
    assert chunks[-1].choices == []
    assert chunks[-1].usage.model_dump() == answer.usage.model_dump()

    # a stop sequence cuts the answer before it
    stop = text[len(text) // 2 :][:4]
    cut = client.chat.completions.create(**ask, stop=[stop, "never in it"])
    assert cut.choices[0].message.content == text[: text.index(stop)]
    assert cut.choices[0].finish_reason == "stop"
    joined, _ = streamed(client, **ask, stop=stop)
    assert joined == text[: text.index(stop)]

    # sampling with a seed repeats itself
    sampled = {"model": TINY, "messages": QUESTION, "max_tokens": 8, "temperature": 1.5, "top_p": 0.9, "seed": 7}
    first, again = (client.chat.completions.create(**sampled).choices[0].message.content for _ in range(2))
    assert first == again


@pytest.fixture
def fine_tuned(workspace, tiny_source):
    """A succeeded full fine-tune of the tiny model whose artifact holds changed weights: a model of its own."""
    from training_app.ml.registry import load_model

    (run,) = runs_on(DatasetFactory(workspace=workspace, name="Support"), "succeeded")
    run.method, run.finished_at = "full", timezone.now()
    run.save(update_fields=["method", "finished_at"])
    model, tokenizer = load_model(tiny_source)
    for parameter in model.parameters():
        parameter.data.mul_(-1.0)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in _saved(model, tokenizer).items():
            archive.writestr(name, data)
        archive.writestr("instructory_run.json", json.dumps({"run": run.pk, "base_model": TINY, "method": "full"}))
    run.artifact.save(f"run-{run.pk}.zip", ContentFile(buffer.getvalue()))
    return run


def _saved(model, tokenizer) -> dict[str, bytes]:
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as folder:
        model.save_pretrained(folder)
        tokenizer.save_pretrained(folder)
        return {path.name: path.read_bytes() for path in Path(folder).iterdir() if path.is_file()}


@pytest.mark.worker
def test_a_fine_tuned_model_answers_with_its_own_weights(celery_worker, client, fine_tuned):
    name = f"ft:{TINY}:acme::ftjob-{fine_tuned.pk}"
    assert name in {model.id for model in client.models.list()}
    ask = {"messages": QUESTION, "max_tokens": 10, "temperature": 0}

    tuned = client.chat.completions.create(model=name, **ask)
    joined, chunks = streamed(client, model=name, **ask)
    base = client.chat.completions.create(model=TINY, **ask)

    assert tuned.model == name
    assert tuned.choices[0].message.content
    assert joined == tuned.choices[0].message.content
    assert chunks[-1].model == name
    assert tuned.choices[0].message.content != base.choices[0].message.content


@pytest.mark.worker
def test_a_model_the_worker_cannot_load_answers_500_with_the_reason(celery_worker, client, workspace):
    (run,) = runs_on(DatasetFactory(workspace=workspace, name="Support"), "succeeded")
    run.artifact.name = f"artifacts/run-{run.pk}-lost.zip"  # the row names a file storage no longer has
    run.save(update_fields=["artifact"])

    with pytest.raises(openai.InternalServerError) as failed:
        client.chat.completions.create(
            model=f"ft:{TINY}:acme::ftjob-{run.pk}", messages=[{"role": "user", "content": "Hello"}]
        )

    assert failed.value.status_code == 500
    assert "could not answer (FileNotFoundError)" in failed.value.message
    assert ChatCompletion.objects.get().status == CompletionStatus.FAILED


def test_bad_requests_are_the_clients_exceptions_and_queue_nothing(client_with, annotator_key, other_admin, key_of):
    client = client_with(annotator_key, timeout=ANSWER_TIMEOUT_S)
    hello = [{"role": "user", "content": "Hello"}]

    with pytest.raises(openai.NotFoundError) as missing:
        client.chat.completions.create(model="gpt-4o", messages=hello)
    assert (missing.value.code, missing.value.param) == ("model_not_found", "model")

    (globex_run,) = runs_on(DatasetFactory(workspace=other_admin.memberships.get().workspace), "succeeded")
    globex_run.artifact.save("x.zip", ContentFile(b"weights"))
    with pytest.raises(openai.NotFoundError):  # another workspace's model is not there for this key
        client.chat.completions.create(model=f"ft:{TINY}:globex::ftjob-{globex_run.pk}", messages=hello)

    for ask, param in (
        ({"temperature": 2.5}, "temperature"),
        ({"top_p": 0}, "top_p"),
        ({"n": 2}, "n"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"messages": [{"role": "tool", "content": "x"}]}, "messages[0].role"),
        ({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]},
         "messages[0].content[0]"),
    ):  # fmt: skip
        with pytest.raises(openai.BadRequestError) as bad:
            client.chat.completions.create(**{"model": TINY, "messages": hello, **ask})
        assert bad.value.param == param, bad.value.message
        assert bad.value.type == "invalid_request_error"

    with pytest.raises(openai.AuthenticationError):
        client_with("sk-inst-wrong", timeout=ANSWER_TIMEOUT_S).chat.completions.create(model=TINY, messages=hello)
    assert not ChatCompletion.objects.exists()


def test_a_request_no_worker_takes_answers_504_and_is_failed(client_with, annotator_key, private_broker, settings):
    settings.CHAT_TIMEOUT_S = 1  # the private broker is never started: no worker ever sees the task
    client = client_with(annotator_key, timeout=ANSWER_TIMEOUT_S)

    with pytest.raises(openai.InternalServerError) as late:
        client.chat.completions.create(model=TINY, messages=[{"role": "user", "content": "Hello"}])

    assert late.value.status_code == 504
    assert late.value.code == TIMEOUT
    row = ChatCompletion.objects.get()
    assert (row.status, row.error_code) == (CompletionStatus.FAILED, TIMEOUT)
