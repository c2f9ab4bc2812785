"""Large files are imported by a real Celery worker; the client follows a job URL."""

import json
import os
import signal
from datetime import timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone

from datasets_app.jobs.services import job_sweep
from datasets_app.models import Job
from tests.api_client import client_for
from tests.worker import WorkerProcess, wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]


def jsonl(records):
    return "\n".join(json.dumps(record) for record in records).encode()


def start_import(api, dataset, content):
    response = api.post(
        f"/api/datasets/{dataset.pk}/import/", {"file": SimpleUploadedFile("big.jsonl", content)}, format="multipart"
    )
    assert response.status_code == 202, response.content
    return response.json()["url"]


def finished_job(api, url):
    return wait_for(lambda: (body := api.get(url).json())["status"] in ("succeeded", "failed") and body, timeout=120)


def test_large_file_is_imported_by_a_worker_with_progress(celery_worker, dataset, annotator, outsider, settings):
    settings.IMPORT_ASYNC_BYTES = 1000
    api = client_for(annotator)
    url = start_import(
        api, dataset, jsonl([{"prompt": f"Question {n}?", "response": f"Answer {n}."} for n in range(3000)])
    )
    assert client_for(outsider).get(url).status_code == 404
    job = finished_job(api, url)
    assert job["status"] == "succeeded", job
    assert job["result"] == {"created": 3000, "skipped_duplicates": 0, "format": "pairs"}
    assert job["progress"] == 1.0
    assert dataset.examples.count() == 3000
    assert dataset.examples.filter(source="import:big.jsonl", created_by=annotator).count() == 3000


def test_large_bad_file_fails_the_job_with_problems_and_writes_nothing(celery_worker, dataset, annotator, settings):
    settings.IMPORT_ASYNC_BYTES = 1000
    records = [{"prompt": f"Question {n}?", "response": f"Answer {n}."} for n in range(3000)]
    records[2500] = {"prompt": "Where is the answer?"}
    api = client_for(annotator)
    job = finished_job(api, start_import(api, dataset, jsonl(records)))
    assert job["status"] == "failed"
    assert job["error"] == "1 problem(s) in the file"
    assert job["problems"] == [{"line": 2501, "field": "response", "message": "is missing"}]
    assert dataset.examples.count() == 0


def test_a_killed_import_is_failed_by_the_sweeper_which_deletes_its_upload(
    private_broker, dataset, annotator, settings
):
    settings.IMPORT_ASYNC_BYTES = 1000
    private_broker.start()  # a worker of its own, to kill
    api = client_for(annotator)
    records = [
        {"prompt": f"Question {n} about a long topic?", "response": f"Answer {n}, at length."} for n in range(150_000)
    ]
    url = start_import(api, dataset, jsonl(records))
    job = Job.objects.get(pk=api.get(url).json()["id"])
    upload = job.file.name
    storage = job.file.storage
    doomed = WorkerProcess("default", env=private_broker.env)
    try:
        wait_for(lambda: Job.objects.get(pk=job.pk).status == "running", timeout=120, interval=0.05)
        os.kill(doomed.process.pid, signal.SIGKILL)
        doomed.process.wait(timeout=30)
    finally:
        doomed.stop()
    assert Job.objects.get(pk=job.pk).status == "running"
    assert storage.exists(upload)

    # The periodic sweeper, as it runs once the heartbeat is overdue.
    job_sweep(now=timezone.now() + timedelta(seconds=settings.JOB_HEARTBEAT_TIMEOUT_S + 1))

    job.refresh_from_db()
    assert job.status == "failed"
    assert "stopped responding" in job.error
    assert not storage.exists(upload)
    assert not job.file
    assert dataset.examples.count() == 0
