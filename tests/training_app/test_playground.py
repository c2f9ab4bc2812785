"""The playground as a job: asking answers at once, a worker generates once, and a stuck request is failed.

No worker runs here: these tests hold their data in a transaction that is never committed, so the task that
`playground_ask` queues on commit is never sent, and a request stays queued as if every worker were down.
The real worker answering is in test_training_worker.py and the browser test.
"""

import io
import json
import zipfile
from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone
from rest_framework.test import APIClient

from tests.api_client import client_for
from tests.training_app.conftest import TINY
from training_app.execution import base_model_dir, playground_answer, playground_claim, playground_finish
from training_app.models import PlaygroundRequest, PlaygroundStatus, TrainingRun
from training_app.services import default_hyperparameters, playground_ask, playground_sweep
from training_app.snapshots import snapshot_create
from training_app.tasks import run_sweep_task

pytestmark = pytest.mark.django_db

ASK = {"prompt": "What dose should I take?", "max_new_tokens": 6}


def succeeded_run(dataset, *, method: str = "lora") -> TrainingRun:
    """A run row as a worker leaves a succeeded one, on a real snapshot."""
    now = timezone.now()
    return TrainingRun.objects.create(
        snapshot=snapshot_create(dataset=dataset, user=None), base_model=TINY, method=method, status="succeeded",
        hyperparameters=default_hyperparameters(), started_at=now, finished_at=now,
    )  # fmt: skip


@pytest.fixture
def run(guardrail_dataset):
    return succeeded_run(guardrail_dataset)


@pytest.fixture
def askable_run(guardrail_dataset):
    """A succeeded full fine-tune whose artifact holds the tiny model's own weights: a real model to ask, untrained."""
    run = succeeded_run(guardrail_dataset, method="full")
    source = base_model_dir(TINY)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path in sorted(source.iterdir()):
            archive.write(path, path.name)
        archive.writestr("instructory_run.json", json.dumps({"run": run.pk, "base_model": TINY, "method": "full"}))
    run.artifact.save(f"run-{run.pk}.zip", ContentFile(buffer.getvalue()))
    return run


# --- the API


def test_asking_answers_at_once_with_a_url_to_poll_while_no_worker_runs(lead, run):
    api = client_for(lead)
    response = api.post(f"/api/runs/{run.pk}/generate/", ASK, format="json")
    assert response.status_code == 202
    queued = response.json()
    ask = PlaygroundRequest.objects.get()
    assert queued == {"id": ask.pk, "status": "queued", "url": f"/api/playground/{ask.pk}/"}
    assert response["Location"] == queued["url"]
    assert ask.status == PlaygroundStatus.QUEUED  # nobody has generated anything: the request did not wait

    polled = api.get(queued["url"])
    assert polled.status_code == 200
    body = polled.json()
    assert {key: body[key] for key in ("id", "status", "prompt", "base", "fine_tuned", "error")} == {
        "id": ask.pk, "status": "queued", "prompt": ASK["prompt"], "base": None, "fine_tuned": None, "error": None,
    }  # fmt: skip
    assert body["max_new_tokens"] == ASK["max_new_tokens"]
    assert body["started_at"] is None


def test_polling_shows_the_answers_once_succeeded_and_the_error_once_failed(lead, run):
    api = client_for(lead)
    now = timezone.now()
    answered = PlaygroundRequest.objects.create(
        run=run, user=lead, prompt="Hi", status="succeeded", base_output="Hello.", fine_tuned_output="",
        started_at=now, finished_at=now,
    )  # fmt: skip
    broken = PlaygroundRequest.objects.create(
        run=run, user=lead, prompt="Hi", status="failed", error="the worker answering this stopped", finished_at=now
    )
    body = api.get(f"/api/playground/{answered.pk}/").json()
    assert (body["status"], body["base"], body["fine_tuned"], body["error"]) == ("succeeded", "Hello.", "", None)
    response = api.get(f"/api/playground/{broken.pk}/")
    assert response.status_code == 200
    body = response.json()
    assert (body["status"], body["base"], body["fine_tuned"]) == ("failed", None, None)
    assert body["error"] == "the worker answering this stopped"


def test_members_of_other_workspaces_get_404_and_annotators_may_ask(lead, annotator, outsider, run):
    queued = client_for(lead).post(f"/api/runs/{run.pk}/generate/", ASK, format="json").json()
    stranger = client_for(outsider)
    assert stranger.post(f"/api/runs/{run.pk}/generate/", ASK, format="json").status_code == 404
    assert stranger.get(queued["url"]).status_code == 404
    assert APIClient().post(f"/api/runs/{run.pk}/generate/", ASK, format="json").status_code == 401
    assert APIClient().get(queued["url"]).status_code == 401

    member = client_for(annotator)
    asked = member.post(f"/api/runs/{run.pk}/generate/", ASK, format="json")
    assert asked.status_code == 202
    assert member.get(asked.json()["url"]).json()["status"] == "queued"
    assert member.get(queued["url"]).status_code == 200  # the workspace's requests are visible to its members
    assert PlaygroundRequest.objects.filter(run=run).count() == 2


def test_bad_prompts_and_unfinished_runs_are_refused_and_queue_nothing(lead, run, guardrail_dataset):
    api = client_for(lead)
    assert api.post(f"/api/runs/{run.pk}/generate/", {"prompt": "   "}, format="json").status_code == 400
    too_long = api.post(f"/api/runs/{run.pk}/generate/", {**ASK, "max_new_tokens": 513}, format="json")
    assert too_long.status_code == 400
    assert "max_new_tokens" in too_long.json()
    training = TrainingRun.objects.create(snapshot=run.snapshot, base_model=TINY, status="running")
    refused = api.post(f"/api/runs/{training.pk}/generate/", ASK, format="json")
    assert refused.status_code == 409
    assert "succeeded" in json.dumps(refused.json())
    with pytest.raises(ValidationError):
        playground_ask(run=run, user=lead, prompt="")
    assert not PlaygroundRequest.objects.exists()


# --- the worker's side: once, and never overwritten


def test_a_redelivered_task_generates_once(lead, askable_run):
    ask = playground_ask(run=askable_run, user=lead, **ASK)
    playground_answer(request_id=ask.pk)
    ask.refresh_from_db()
    assert ask.status == PlaygroundStatus.SUCCEEDED, ask.error
    assert ask.base_output
    assert ask.fine_tuned_output == ask.base_output  # the "fine-tuned" weights are the base model's
    assert ask.started_at <= ask.finished_at
    first = (ask.base_output, ask.started_at, ask.finished_at, ask.updated_at)

    playground_answer(request_id=ask.pk)  # the broker delivers the same task again
    ask.refresh_from_db()
    assert (ask.base_output, ask.started_at, ask.finished_at, ask.updated_at) == first


def test_a_second_delivery_leaves_a_request_another_worker_is_generating(lead, run):
    ask = playground_ask(run=run, user=lead, **ASK)
    assert playground_claim(ask.pk) is not None
    playground_answer(request_id=ask.pk)  # would fail at once: this run has no artifact
    ask.refresh_from_db()
    assert ask.status == PlaygroundStatus.RUNNING
    assert ask.error == ""
    assert playground_claim(ask.pk) is None


def test_a_worker_that_cannot_answer_fails_the_request_with_a_plain_message(lead, run):
    ask = playground_ask(run=run, user=lead, **ASK)
    playground_answer(request_id=ask.pk)  # the run has no artifact to load
    body = client_for(lead).get(f"/api/playground/{ask.pk}/").json()
    assert body["status"] == "failed"
    assert body["error"].startswith("the models could not answer")
    assert body["finished_at"] is not None


def test_a_late_answer_does_not_reopen_a_request_the_sweeper_failed(lead, run):
    ask = playground_ask(run=run, user=lead, **ASK)
    claimed = playground_claim(ask.pk)
    PlaygroundRequest.objects.filter(pk=ask.pk).update(started_at=timezone.now() - timedelta(hours=1))
    assert playground_sweep() == 1
    assert not playground_finish(claimed, status="succeeded", base_output="late", fine_tuned_output="late")
    ask.refresh_from_db()
    assert ask.status == PlaygroundStatus.FAILED
    assert ask.base_output == ""
    assert "stopped" in ask.error


# --- the sweeper


def test_the_periodic_sweeper_fails_requests_generating_past_the_timeout_and_leaves_the_rest(settings, lead, run):
    assert settings.PLAYGROUND_TIMEOUT_S == 600
    now = timezone.now()
    long_ago = now - timedelta(seconds=601)
    stuck = PlaygroundRequest.objects.create(run=run, user=lead, prompt="Stuck", status="running", started_at=long_ago)
    busy = PlaygroundRequest.objects.create(run=run, user=lead, prompt="Busy", status="running", started_at=now)
    waiting = PlaygroundRequest.objects.create(run=run, user=lead, prompt="Waiting")
    answered = PlaygroundRequest.objects.create(
        run=run, user=lead, prompt="Done", status="succeeded", base_output="A", fine_tuned_output="B",
        started_at=long_ago, finished_at=long_ago + timedelta(seconds=2),
    )  # fmt: skip
    before = PlaygroundRequest.objects.get(pk=answered.pk)

    run_sweep_task()

    stuck.refresh_from_db()
    assert stuck.status == PlaygroundStatus.FAILED
    assert "the worker answering this stopped" in stuck.error
    assert stuck.finished_at is not None
    assert PlaygroundRequest.objects.get(pk=busy.pk).status == PlaygroundStatus.RUNNING
    assert PlaygroundRequest.objects.get(pk=waiting.pk).status == PlaygroundStatus.QUEUED
    after = PlaygroundRequest.objects.get(pk=answered.pk)
    assert (after.status, after.base_output, after.fine_tuned_output, after.error, after.finished_at) == (
        before.status, before.base_output, before.fine_tuned_output, before.error, before.finished_at,
    )  # fmt: skip


# --- the migration from `done`


@pytest.mark.django_db(transaction=True)
def test_the_migration_turns_done_into_a_status_and_back(lead, run):
    before, after = [("training_app", "0001_initial")], [("training_app", "0002_playground_request_status")]
    executor = MigrationExecutor(connection)
    try:
        executor.migrate(before)
        old = executor.loader.project_state(before).apps.get_model("training_app", "PlaygroundRequest")
        answered = old.objects.create(run_id=run.pk, prompt="a", base_output="x", fine_tuned_output="y", done=True)
        broken = old.objects.create(run_id=run.pk, prompt="b", error="CUDA out of memory", done=True)
        waiting = old.objects.create(run_id=run.pk, prompt="c")

        executor = MigrationExecutor(connection)
        executor.migrate(after)
        new = executor.loader.project_state(after).apps.get_model("training_app", "PlaygroundRequest")
        statuses = {row.pk: (row.status, row.finished_at is not None) for row in new.objects.all()}
        assert statuses == {
            answered.pk: ("succeeded", True),
            broken.pk: ("failed", True),
            waiting.pk: ("queued", False),
        }

        executor = MigrationExecutor(connection)
        executor.migrate(before)
        done = dict(old.objects.values_list("pk", "done"))
        assert done == {answered.pk: True, broken.pk: True, waiting.pk: False}
    finally:
        executor = MigrationExecutor(connection)
        executor.migrate(executor.loader.graph.leaf_nodes())
