"""A run on a real worker is scored on its snapshot's evaluation set, which it never trains on (tiny random SmolLM2)."""

import pytest

from tests.api_client import client_for
from tests.training_app.conftest import FAST, TINY
from tests.training_app.test_eval_snapshots import add_eval_pairs
from tests.training_app.test_training_worker import watch

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]


def test_a_run_is_evaluated_on_the_evaluation_set_and_never_trains_on_it(celery_worker, guardrail_dataset, lead):
    held_out = add_eval_pairs(guardrail_dataset, lead)
    api = client_for(lead)
    one_pair_a_step = {**FAST, "epochs": 1, "batch_size": 1, "grad_accum": 1}
    body = {"dataset": guardrail_dataset.pk, "base_model": TINY, "hyperparameters": one_pair_a_step}
    created = api.post("/api/runs/", body, format="json")
    assert created.status_code == 201, created.json()
    _, run = watch(api, created.json()["id"])
    assert run["status"] == "succeeded", run["error"] + run["traceback_tail"]

    assert run["evaluation"]["source"] == "eval_set"
    assert [(item["example"], item["prompt"]) for item in run["eval_items"]] == [(p.pk, p.prompt) for p in held_out]
    assert [item["blocked"] for item in run["eval_items"]] == [True, False]
    assert (run["evaluation"]["after"]["blocked"], run["evaluation"]["after"]["allowed"]) == (1, 1)
    snapshot = api.get(f"/api/snapshots/{run['snapshot']}/").json()
    assert snapshot["n_eval"] == 2
    logs = [line["line"] for line in api.get(f"/api/runs/{run['id']}/logs/").json()]
    trained_on = f"{snapshot['n_train']} train, {snapshot['n_validation']} validation, 2 evaluation pairs"
    assert any(line.endswith(f"{trained_on}; evaluating on the evaluation set") for line in logs), logs
    assert run["total_steps"] == snapshot["n_train"] == 10  # one step a training pair: none of the evaluation pairs
