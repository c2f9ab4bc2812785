"""A real run's failures back to annotators, through a real worker: the tiny random SmolLM2 trains and is evaluated
(it refuses nothing, so it fails the blocked prompts), then the failures go back as drafts, as they are and reworded
by the default generator (the local base model) on the worker."""

import pytest

from datasets_app.curation.content import normalize
from datasets_app.models import DatasetKind, Example
from tests.api_client import client_for
from tests.factories import DatasetFactory
from tests.training_app.conftest import FAST, TINY
from tests.training_app.test_eval_snapshots import add_eval_pairs
from tests.training_app.test_training_worker import watch
from tests.worker import wait_for
from training_app.models import FailureDraft

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]


def test_a_runs_failed_prompts_go_back_to_annotators_as_is_and_reworded(
    celery_worker, guardrail_dataset, lead, workspace, client
):
    evaluated = {pair.prompt: pair for pair in add_eval_pairs(guardrail_dataset, lead)}
    api = client_for(lead)
    hyperparameters = {**FAST, "epochs": 1}
    created = api.post("/api/runs/", {"dataset": guardrail_dataset.pk, "base_model": TINY, "hyperparameters": hyperparameters}, format="json")  # fmt: skip
    _, run = watch(api, created.json()["id"])
    assert run["status"] == "succeeded", run["error"] + run["traceback_tail"]
    failures = [item for item in run["eval_items"] if item["after_ok"] is False]
    assert any(item["blocked"] for item in failures)  # random weights refuse nothing
    url = f"/api/runs/{run['id']}/send-failures/"

    # as is: the drafts are written at once
    as_is = api.post(url, {"paraphrase": False}, format="json")
    assert as_is.status_code == 200, as_is.content
    assert (as_is.json()["created"], as_is.json()["skipped"]) == (len(failures), 0)
    for item in failures:
        draft = Example.objects.get(dataset=guardrail_dataset, source=f"run:{run['id']}", prompt=item["prompt"])
        assert (draft.status, draft.split) == ("draft", "train")
        assert f"from-run:{run['id']}" in draft.tags
        assert FailureDraft.objects.get(example=draft).eval_item_id == item["id"]
        if item["blocked"]:
            assert draft.response == evaluated[item["prompt"]].response  # the refusal (no template: the pair's own)
    again = api.post(url, {"paraphrase": False}, format="json").json()
    assert (again["created"], again["skipped"]) == (0, len(failures))

    # reworded, into a second dataset: a worker asks the generator, the job says what it made
    second = DatasetFactory(workspace=workspace, name="Guardrail, round two", kind=DatasetKind.GUARDRAIL)
    queued = api.post(url, {"dataset": second.pk}, format="json")
    assert queued.status_code == 202, queued.content
    assert queued.json()["kind"] == "failures"

    def finished():
        body = api.get(queued.json()["job_url"]).json()
        return body if body["status"] in ("succeeded", "failed") else None

    job = wait_for(finished, timeout=180)
    assert job["status"] == "succeeded", job["error"]
    result = job["result"]
    assert result["created"] + result["not_reworded"] == len(failures)
    assert result["created"] >= 1
    drafts = list(second.examples.all())
    assert len(drafts) == result["created"] == len(result["examples"])
    for draft in drafts:
        link = FailureDraft.objects.select_related("eval_item").get(example=draft)
        assert link.paraphrased
        assert draft.prompt.strip()
        assert normalize(draft.prompt) != normalize(link.eval_item.prompt)  # the evaluation prompt stays out
        assert draft.source == f"run:{run['id']}"
    client.force_login(lead)
    page = client.get(f"/jobs/{job['id']}/").content.decode()
    assert f"Created {result['created']} draft pair" in page
    assert f"?source=run:{run['id']}&amp;status=draft" in page
