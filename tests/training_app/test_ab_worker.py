"""Prompts typed for blind judging, answered by both models on a real worker (the tiny random SmolLM2): the request
answers at once, the item's URL gives the pair once both models have answered, and it is judged like any other."""

import pytest

from tests.api_client import client_for
from tests.training_app.test_ab import leaks
from tests.training_app.test_playground import askable_run as askable_run  # noqa: F401 - the fixture
from tests.training_app.test_playground import succeeded_run
from tests.worker import wait_for
from training_app.execution import answer_prompt, loaded_base_model, usual_system_prompt
from training_app.models import ABItem

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]


def ask(api, run, prompt, against="base"):
    """Type a prompt as the judging page does (202 at once), then poll its URL until both models have answered."""
    queued = api.post(f"/api/runs/{run.pk}/ab/next/", {"prompt": prompt, "against": against}, format="json")
    assert queued.status_code == 202, queued.json()
    url = queued.json()["url"]

    def finished():
        response = api.get(url)
        return response if response.json()["status"] in ("ready", "failed") else None

    return queued.json(), wait_for(finished, timeout=180, interval=0.2)


def test_a_typed_prompt_is_answered_by_both_models_on_a_worker_and_judged_blind(
    celery_worker,
    askable_run,  # noqa: F811
    annotator,
):
    api = client_for(annotator)
    queued, answered = ask(api, askable_run, "How long should I bake bread?")
    body = answered.json()
    assert body["status"] == "ready", body["error"]
    assert set(body) == {"token", "status", "prompt", "a", "b", "error"}
    assert leaks(answered, [askable_run.pk]) == []
    assert body["token"] == queued["token"]
    # the artifact holds the tiny model's own weights: fine-tuned and base answer alike, greedily, as taught
    expected = answer_prompt(
        loaded_base_model(askable_run.base_model), "How long should I bake bread?",
        system=usual_system_prompt(askable_run), max_new_tokens=48,
    )  # fmt: skip
    assert body["a"] == body["b"] == expected
    # the next pair for this person is their answered prompt; voted on, nothing is left (the run has no evaluation)
    shown = api.get(f"/api/runs/{askable_run.pk}/ab/next/").json()
    assert shown == {"token": body["token"], "prompt": body["prompt"], "a": body["a"], "b": body["b"]}
    assert api.post("/api/ab-votes/", {"token": body["token"], "choice": "tie"}, format="json").status_code == 201
    assert api.get(f"/api/runs/{askable_run.pk}/ab/next/").status_code == 204
    summary = api.get(f"/api/runs/{askable_run.pk}/ab/summary/", {"against": "base"}).json()
    assert (summary["votes"], summary["ties"], summary["win_rate"]) == (1, 1, None)


def test_a_typed_prompt_against_another_run_is_answered_by_each_runs_model(
    celery_worker,
    askable_run,  # noqa: F811
    annotator,
):
    other = succeeded_run(askable_run.snapshot.dataset, method="full")
    other.artifact.name = askable_run.artifact.name  # the same weights, stored once
    other.save(update_fields=["artifact"])
    api = client_for(annotator)
    _, answered = ask(api, askable_run, "Is it safe to eat raw dough?", against=str(other.pk))
    body = answered.json()
    assert body["status"] == "ready", body["error"]
    item = ABItem.objects.get(token=body["token"])
    assert {item.a_model, item.b_model} == {f"run:{askable_run.pk}", f"run:{other.pk}"}
    assert body["a"] == body["b"]
    # the same two models from the other run's page: the same pair, shown again until voted on
    assert api.get(f"/api/runs/{other.pk}/ab/next/", {"against": askable_run.pk}).json()["token"] == body["token"]
