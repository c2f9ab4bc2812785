"""The local generator backend on the real bundled SmolLM2-135M-Instruct (built into the model cache if missing)."""

import os
import subprocess
import sys

import pytest
from django.conf import settings

from datasets_app.blueprints.generators import ChatRequest, generator_get, paraphrase_prompts
from datasets_app.curation.content import normalize
from training_app.generation import LocalGenerator

REQUESTS = [
    ChatRequest(prompt="Name a fruit that is yellow."),
    ChatRequest(prompt="Say hello.", system_prompt="You are a friendly assistant."),
    ChatRequest(
        prompt="And what colour is grass?",
        history=({"role": "user", "content": "What colour is the sky?"}, {"role": "assistant", "content": "Blue."}),
    ),
]


@pytest.fixture(scope="module")
def local():
    generator = generator_get("local")  # the default settings: the bundled base model
    generator.generate([ChatRequest(prompt="Hi")], max_new_tokens=1)  # load once, here, for the whole module
    return generator


def test_importing_and_choosing_the_local_backend_loads_no_torch():
    code = (
        "import sys, django; django.setup(); from datasets_app.blueprints.generators import generator_get; "
        "generator_get('local'); print('torch' in sys.modules)"
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "project.settings"}
    # A fresh interpreter, as a web process would be.
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env, cwd=settings.BASE_DIR
    )

    assert result.stdout.strip() == "False"


@pytest.mark.slow
def test_local_answers_are_non_empty_and_the_same_every_time(local):
    first = local.generate(REQUESTS, max_new_tokens=8)

    assert isinstance(local, LocalGenerator)
    assert len(first) == len(REQUESTS)
    assert all(answer and answer == answer.strip() for answer in first)
    assert local.generate(REQUESTS, max_new_tokens=8) == first


@pytest.mark.slow
def test_a_factual_question_gets_the_right_answer(local):
    (answer,) = local.generate([ChatRequest(prompt="What is the capital of France?")], max_new_tokens=24)

    assert "Paris" in answer


@pytest.mark.slow
def test_the_local_model_rewords_a_prompt(local):
    original = "How long should I boil an egg?"

    (rewordings,) = paraphrase_prompts(local, [original], 2)

    assert 1 <= len(rewordings) <= 2
    assert len({normalize(text) for text in rewordings}) == len(rewordings)
    assert normalize(original) not in {normalize(text) for text in rewordings}
    assert all("\n" not in text for text in rewordings)
