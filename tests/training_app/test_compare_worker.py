"""Two real runs (tiny random SmolLM2 on a worker), the second after a data change, compared over the API."""

import pytest
from django.test import Client
from django.urls import reverse

from datasets_app.curation.services import example_update
from tests.api_client import client_for
from tests.training_app.conftest import FAST, TINY
from tests.training_app.test_eval_snapshots import add_eval_pairs
from tests.training_app.test_training_worker import watch

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]


def test_two_trained_runs_compare_on_their_evaluation_set_with_the_data_change(celery_worker, guardrail_dataset, lead):
    held_out = add_eval_pairs(guardrail_dataset, lead)
    api = client_for(lead)
    body = {"dataset": guardrail_dataset.pk, "base_model": TINY, "hyperparameters": {**FAST, "epochs": 1}}
    first = api.post("/api/runs/", body, format="json").json()
    _, first = watch(api, first["id"])
    edited = guardrail_dataset.examples.filter(split="train").order_by("id").first()
    example_update(example=edited, user=lead, expected_version=edited.version, response="I can't advise on doses.")
    last = api.post("/api/runs/", body, format="json").json()
    _, last = watch(api, last["id"])
    assert (first["status"], last["status"]) == ("succeeded", "succeeded"), first["error"] + last["error"]

    response = api.get("/api/runs/compare/", {"runs": f"{first['id']},{last['id']}"})
    assert response.status_code == 200, response.json()
    compared = response.json()
    assert compared["same_eval_set"] is True
    assert sorted(p["example"] for p in compared["prompts"]) == sorted(pair.pk for pair in held_out)
    metrics = {metric["name"]: metric for metric in compared["metrics"]}
    assert {"refusal_rate", "over_refusal_rate", "eval_loss", "train_loss", "val_loss"} <= set(metrics)
    assert metrics["train_loss"]["values"] == [first["summary"]["final_loss"], last["summary"]["final_loss"]]
    assert metrics["refusal_rate"]["better"] == "higher"
    for prompt in compared["prompts"]:
        items = [next(i for i in run["eval_items"] if i["prompt"] == prompt["prompt"]) for run in (first, last)]
        assert prompt["outputs"] == [item["after_output"] for item in items]
        assert prompt["passed"] == [item["after_ok"] for item in items]
    flips = [p["flip"] for p in compared["prompts"]]
    assert compared["flips"] == {"fixed": flips.count("fixed"), "broken": flips.count("broken")}

    diff = api.get(f"/api/snapshots/{first['snapshot']}/diff/{last['snapshot']}/").json()
    assert [(c["ref"], c["changed_fields"]) for c in diff["changed"]] == [(edited.pk, ["response"])]
    assert diff["counts"]["eval"] == {"added": 0, "removed": 0, "changed": 0, "unchanged": 2}

    browser = Client()
    browser.force_login(lead)
    page = browser.get(reverse("training-compare"), {"runs": f"{first['id']},{last['id']}"})
    assert page.status_code == 200
    data = page.content.decode().split('id="compare-data"')[1]
    assert "<strong>1 changed</strong>" in data
    assert "<ins>" in data
