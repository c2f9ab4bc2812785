"""Work submitted while the broker is down: every request answers as usual, and the work starts by itself once the
broker is back (the outbox's dispatcher, sent by a real beat, run by a real worker). A Redis of the test's own, so
this runs on either suite configuration."""

import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from datasets_app.blueprints.services import template_create
from datasets_app.models import Job
from tests.api_client import client_for
from tests.datasets_app.blueprints.test_services import GUARDRAIL
from tests.factories import DatasetFactory
from tests.training_app.conftest import FAST, TINY
from tests.worker import BeatProcess, WorkerProcess, wait_for
from training_app.models import PlaygroundRequest, TrainingRun

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]
PAIRS = [{"prompt": f"Question {n}?", "response": f"Answer {n}."} for n in range(40)]


def submitted(response, code: int, model):
    """The row a request made; it answered `code` and the row waits, queued, its task not sent."""
    assert response.status_code == code, response.content
    row = model.objects.get(pk=response.json().get("job") or response.json()["id"])
    assert (row.status, row.dispatched_at) == ("queued", None)
    return row


def finished(row, timeout: float = 300):
    wait_for(lambda: type(row).objects.get(pk=row.pk).status not in ("queued", "running"), timeout=timeout)
    row.refresh_from_db()
    return row


def test_work_submitted_while_the_broker_is_down_answers_normally_and_runs_once_it_is_back(
    private_broker, guardrail_dataset, workspace, lead, settings, tmp_path
):
    settings.IMPORT_ASYNC_BYTES, settings.LINT_SYNC_MAX, settings.GENERATE_SYNC_MAX = 100, 1, 0
    api = client_for(lead)
    imported_into = DatasetFactory(workspace=workspace, name="Imported")
    generated_into = DatasetFactory(workspace=workspace, name="Generated")
    template = template_create(workspace=workspace, user=lead, name="Kitchen", kind="guardrail", spec=GUARDRAIL)
    upload = SimpleUploadedFile("pairs.jsonl", "\n".join(json.dumps(pair) for pair in PAIRS).encode())

    # the broker is down (nothing listens on its port): every request answers as usual
    run = submitted(
        api.post(
            "/api/runs/", {"dataset": guardrail_dataset.pk, "base_model": TINY, "hyperparameters": FAST}, format="json"
        ),
        201,
        TrainingRun,
    )
    imported = submitted(
        api.post(f"/api/datasets/{imported_into.pk}/import/", {"file": upload}, format="multipart"), 202, Job
    )
    check = submitted(api.post(f"/api/datasets/{guardrail_dataset.pk}/lint/"), 202, Job)
    again = api.post(f"/api/datasets/{guardrail_dataset.pk}/lint/")
    assert again.json()["id"] == check.pk  # the queued check is reused: it will run
    generated = submitted(api.post(f"/api/templates/{template.pk}/generate/", {"dataset": generated_into.pk}), 202, Job)

    # the broker comes back; no one asks again
    private_broker.start()
    quick = {**private_broker.env, "DISPATCH_INTERVAL_S": "1"}
    with WorkerProcess("default,training", env=quick), BeatProcess(tmp_path / "beat", env=quick):
        for row in (imported, check, generated, run):
            assert finished(row).status == "succeeded", row.error
        assert imported_into.examples.count() == len(PAIRS)
        assert check.result["checked"] == guardrail_dataset.examples.count()
        assert generated.result["created"] == generated_into.examples.count() > 0

        # the broker goes away again under a running worker and beat, while someone asks the playground
        private_broker.stop()
        question = submitted(
            api.post(f"/api/runs/{run.pk}/generate/", {"prompt": "What dose?", "max_new_tokens": 4}, format="json"),
            202,
            PlaygroundRequest,
        )
        private_broker.start()
        answer = finished(question, timeout=180)
        assert answer.status == "succeeded", answer.error
        assert isinstance(answer.fine_tuned_output, str)
