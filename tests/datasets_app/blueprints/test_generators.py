"""Generator backends: the OpenAI-compatible HTTP backend against a real local server, choosing a backend, paraphrasing."""

import socket
import time

import pytest

from datasets_app.blueprints import generators
from datasets_app.blueprints.generators import (
    ChatRequest,
    Generator,
    GeneratorError,
    OpenAIChatGenerator,
    generator_choices,
    generator_get,
    paraphrase_prompts,
)
from tests.chat_server import API_KEY, ChatHandler, ChatServer, answer_for, openai_settings, serving

HISTORY = ({"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello! How can I help?"})


class CountingHandler(ChatHandler):
    """Answers a little slowly and counts how many requests are in flight at once.

    A request stops counting before its answer is written: once the client has the answer it may send
    the next request while this thread is still finishing.
    """

    def do_POST(self) -> None:
        server = self.server
        with server.lock:
            server.in_flight += 1
            server.most_in_flight = max(server.most_in_flight, server.in_flight)
        time.sleep(0.05)
        with server.lock:
            server.in_flight -= 1
        super().do_POST()


class CountingServer(ChatServer):
    def __init__(self) -> None:
        super().__init__()
        self.RequestHandlerClass = CountingHandler
        self.in_flight = self.most_in_flight = 0


@pytest.fixture(scope="module")
def module_server():
    yield from serving(CountingServer())


@pytest.fixture
def server(module_server):
    module_server.requests.clear()
    module_server.failures.clear()
    module_server.most_in_flight = 0
    return module_server


@pytest.fixture
def quick_retries(monkeypatch):
    monkeypatch.setattr(generators, "RETRY_BACKOFF_S", 0.01)


def http_generator(server, **overrides):
    return OpenAIChatGenerator(key="openai", config={**openai_settings(server), **overrides})


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- the HTTP backend


def test_a_request_sends_model_messages_key_and_token_limit(server):
    request = ChatRequest(prompt="What is 2 + 2?", system_prompt="Answer briefly.", history=HISTORY)

    (answer,) = http_generator(server).generate([request], max_new_tokens=32)

    (sent,) = server.requests
    expected_messages = [
        {"role": "system", "content": "Answer briefly."},
        *HISTORY,
        {"role": "user", "content": "What is 2 + 2?"},
    ]
    assert sent["path"] == "/v1/chat/completions"
    assert sent["auth"] == f"Bearer {API_KEY}"
    assert sent["model"] == "test-chat-model"
    assert sent["messages"] == expected_messages
    assert (sent["max_tokens"], sent["temperature"]) == (32, 0)
    assert answer == answer_for(expected_messages)


def test_answers_keep_the_request_order_while_requests_run_concurrently(server):
    requests = [ChatRequest(prompt=f"Question number {n}") for n in range(12)]

    answers = http_generator(server).generate(requests)

    assert answers == [answer_for([{"role": "user", "content": f"Question number {n}"}]) for n in range(12)]
    assert 1 < server.most_in_flight <= 4


def test_a_rate_limited_request_is_retried(server):
    server.failures.append((429, "Rate limit reached, slow down"))

    (answer,) = http_generator(server).generate([ChatRequest(prompt="Hello")])

    assert answer == answer_for([{"role": "user", "content": "Hello"}])
    assert len(server.requests) == 2


def test_a_server_error_that_persists_fails_after_three_tries(server, quick_retries):
    server.failures += [(503, "overloaded")] * 3

    with pytest.raises(GeneratorError, match=r"HTTP 503: overloaded \(tried 3 times\)"):
        http_generator(server).generate([ChatRequest(prompt="Hello")])
    assert len(server.requests) == 3


def test_a_wrong_key_names_endpoint_status_and_message_but_never_the_key(server):
    generator = http_generator(server, API_KEY="sk-wrong-secret-123")

    with pytest.raises(GeneratorError) as caught:
        generator.generate([ChatRequest(prompt="Hello")])

    message = str(caught.value)
    assert f"{server.base_url}/chat/completions answered HTTP 401" in message
    assert "Incorrect API key provided" in message
    assert "sk-wrong-secret-123" not in message
    assert len(server.requests) == 1  # a refused key is not retried


def test_a_server_that_echoes_the_key_does_not_leak_it(server):
    server.failures.append((400, f"bad request from key {API_KEY}"))

    with pytest.raises(GeneratorError) as caught:
        http_generator(server).generate([ChatRequest(prompt="Hello")])

    assert API_KEY not in str(caught.value)
    assert "HTTP 400" in str(caught.value)


def test_a_reply_without_message_content_is_an_error(server):
    server.failures.append((200, "not a chat completion"))  # a 200 whose body has no choices

    with pytest.raises(GeneratorError, match=r"without choices\[0\]\.message\.content"):
        http_generator(server).generate([ChatRequest(prompt="Hello")])


def test_an_unreachable_endpoint_says_so(quick_retries):
    generator = OpenAIChatGenerator(
        key="openai", config={"BASE_URL": f"http://127.0.0.1:{closed_port()}/v1", "MODEL": "m", "TIMEOUT": 2}
    )

    with pytest.raises(GeneratorError, match="could not reach http://127.0.0.1:.*tried 3 times"):
        generator.generate([ChatRequest(prompt="Hello")])


def test_no_requests_means_no_call(server):
    assert http_generator(server).generate([]) == []
    assert server.requests == []


# --- choosing a backend


@pytest.fixture
def configured(settings, server):
    settings.GENERATORS = {**settings.GENERATORS, "openai": openai_settings(server)}
    return settings


def test_a_configured_backend_is_built_from_settings(configured):
    generator = generator_get("openai")

    assert isinstance(generator, OpenAIChatGenerator)
    assert (generator.key, generator.model_name, generator.label) == ("openai", "test-chat-model", "Test chat server")
    assert generator.source == "model:test-chat-model"


def test_without_a_key_the_default_generator_is_used(configured):
    configured.DEFAULT_GENERATOR = "openai"

    assert generator_get().key == "openai"


def test_the_default_settings_offer_the_local_model(settings):
    generator = generator_get()

    assert generator.key == "local"
    assert generator.source == f"model:{settings.DEFAULT_BASE_MODEL}"


def test_an_unknown_key_is_refused_naming_the_known_ones(configured):
    with pytest.raises(GeneratorError, match="unknown generator 'gpt-9'.*local, openai"):
        generator_get("gpt-9")


def test_choices_name_each_backend_without_secrets(configured, server):
    choices = generator_choices()

    assert ("openai", "Test chat server") in choices
    assert [key for key, _ in choices] == ["local", "openai"]
    assert API_KEY not in str(choices)
    assert server.base_url not in str(choices)


# --- paraphrasing


class Scripted(Generator):
    """Answers with fixed texts, in turn, and keeps the requests it got."""

    def __init__(self, answers):
        super().__init__(key="scripted", config={"MODEL": "scripted"})
        self.answers = list(answers)
        self.requests = []

    def generate(self, requests, *, max_new_tokens=256):
        self.requests += requests
        return [self.answers.pop(0) for _ in requests]


def test_paraphrases_are_cleaned_and_drop_copies_and_repeats():
    answers = [
        'Paraphrase: "How can I boil an egg?"',
        "  how should I BOIL an egg?  ",  # the original, up to case and spaces
        "Sure, here is a rewording:\n\nWhat's the way to boil an egg?",
        "**Reworded request:** How can I boil an egg?",  # the same as the first
        "",
    ]
    generator = Scripted(answers)

    (rewordings,) = paraphrase_prompts(generator, ["How should I boil an egg?"], 5)

    assert rewordings == ["How can I boil an egg?", "What's the way to boil an egg?"]


def test_each_rewording_is_asked_for_with_a_different_instruction():
    generator = Scripted([f"Rewording {n}" for n in range(4)])

    result = paraphrase_prompts(generator, ["First prompt", "Second prompt"], 2)

    assert result == [["Rewording 0", "Rewording 1"], ["Rewording 2", "Rewording 3"]]
    prompts = [request.prompt for request in generator.requests]
    assert len(set(prompts)) == 4
    assert all("First prompt" in prompt for prompt in prompts[:2])


def test_no_rewordings_asked_means_no_model_call():
    generator = Scripted([])

    assert paraphrase_prompts(generator, ["A prompt", "Another"], 0) == [[], []]
    assert generator.requests == []


def test_paraphrasing_works_over_http(server):
    (rewordings,) = paraphrase_prompts(http_generator(server), ["How do I reset my password?"], 3)

    assert len(rewordings) == 3
    assert len(set(rewordings)) == 3
    assert "How do I reset my password?" not in rewordings
