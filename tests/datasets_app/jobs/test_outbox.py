"""The outbox: a job submitted while the broker is down is kept, and the dispatcher sends it once the broker is back;
a message the broker lost is sent again; a job sent twice runs once. Real Redis brokers of the tests' own."""

import logging
from datetime import timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone

from datasets_app.curation.services import example_create
from datasets_app.jobs.outbox import dispatch
from datasets_app.jobs.services import job_create, job_dispatch
from datasets_app.lint.tasks import lint_job_task
from datasets_app.models import Job
from tests.api_client import client_for
from tests.datasets_app.imports.test_async_import import jsonl
from tests.worker import BeatProcess, WorkerProcess, wait_for

pytestmark = pytest.mark.django_db(transaction=True)
PAIRS = [{"prompt": f"Question {n}?", "response": f"Answer {n}."} for n in range(50)]


def queued_check(dataset, user, *, age_s: float = 60) -> Job:
    """A lint job made while the broker was down, `age_s` seconds ago."""
    job = job_create(kind=Job.Kind.LINT, dataset=dataset, user=user, task=lint_job_task.name)
    Job.objects.filter(pk=job.pk).update(created_at=timezone.now() - timedelta(seconds=age_s))
    job.refresh_from_db()
    return job


def post_import(api, dataset, **fields):
    upload = SimpleUploadedFile("pairs.jsonl", jsonl(PAIRS))
    response = api.post(f"/api/datasets/{dataset.pk}/import/", {"file": upload, **fields}, format="multipart")
    assert response.status_code == 202, response.content
    return Job.objects.get(pk=response.json()["job"])


def runs_of(task: str, worker: WorkerProcess) -> list[str]:
    """The worker's log lines of each execution of `task` that ended."""
    return [line for line in worker.log if task in line and " succeeded in " in line]


def test_a_job_made_while_the_broker_is_down_is_kept_queued_and_the_failed_send_logged(
    private_broker, dataset, annotator, caplog
):
    with caplog.at_level(logging.WARNING, logger="datasets_app.jobs.outbox"):
        job = queued_check(dataset, annotator)

    assert (job.status, job.dispatched_at, job.dispatch_count) == ("queued", None, 0)
    (warning,) = [record for record in caplog.records if record.name == "datasets_app.jobs.outbox"]
    assert f"could not send datasets_app.job {job.pk} to the broker" in warning.getMessage()


def test_the_dispatcher_sends_jobs_that_never_reached_the_broker_once_it_is_back(private_broker, dataset, annotator):
    old, older = queued_check(dataset, annotator, age_s=30), queued_check(dataset, annotator, age_s=60)
    fresh = queued_check(dataset, annotator, age_s=0)  # its own request may still be sending it
    soon = fresh.created_at + timedelta(seconds=1)

    assert job_dispatch(now=soon) == 0  # the broker is down: the pass stops at the first failed send
    private_broker.start()
    assert job_dispatch(now=soon) == 2

    assert private_broker.cli("llen", "default") == "2"
    assert [Job.objects.get(pk=job.pk).dispatch_count for job in (older, old, fresh)] == [1, 1, 0]
    assert job_dispatch(now=soon) == 0  # sent: not again before the deadline


def test_a_job_sent_but_still_queued_is_sent_again_after_a_deadline_that_doubles(
    private_broker, dataset, annotator, settings
):
    settings.DISPATCH_DEADLINE_S, settings.DISPATCH_DEADLINE_MAX_S = 60, 100
    private_broker.start()
    job = queued_check(dataset, annotator, age_s=0)
    assert job.dispatch_count == 1
    started = Job.objects.create(kind=Job.Kind.LINT, dataset=dataset, task=job.task, status="running")
    Job.objects.filter(pk=started.pk).update(dispatched_at=timezone.now() - timedelta(hours=1), dispatch_count=1)

    assert job_dispatch(now=timezone.now() + timedelta(seconds=50)) == 0
    assert job_dispatch(now=timezone.now() + timedelta(seconds=70)) == 1  # the first message may be lost
    assert job_dispatch(now=timezone.now() + timedelta(seconds=70)) == 0  # now it waits 120 s, capped at 100
    assert job_dispatch(now=timezone.now() + timedelta(seconds=110)) == 1

    assert Job.objects.get(pk=job.pk).dispatch_count == 3
    assert private_broker.cli("llen", "default") == "3"  # the running job was never sent again


def test_a_queued_job_whose_task_no_longer_exists_is_failed_not_left_queued(dataset, annotator):
    job = Job.objects.create(kind=Job.Kind.LINT, dataset=dataset, task="datasets_app.lint.tasks.gone_task")
    Job.objects.filter(pk=job.pk).update(created_at=timezone.now() - timedelta(minutes=1))

    job_dispatch()

    job.refresh_from_db()
    assert job.status == "failed"
    assert "'datasets_app.lint.tasks.gone_task' does not exist" in job.error


def test_a_second_check_request_sends_the_queued_check_whose_send_failed(
    private_broker, dataset, annotator, lead, settings
):
    settings.LINT_SYNC_MAX = 0
    example_create(dataset=dataset, user=annotator, prompt="Why?", response="Because.")
    first = client_for(annotator).post(f"/api/datasets/{dataset.pk}/lint/")
    assert first.status_code == 202
    assert Job.objects.get(pk=first.json()["id"]).dispatched_at is None
    private_broker.start()

    again = client_for(lead).post(f"/api/datasets/{dataset.pk}/lint/")

    assert again.json()["id"] == first.json()["id"]
    assert Job.objects.get(pk=first.json()["id"]).dispatch_count == 1
    assert private_broker.cli("llen", "default") == "1"


@pytest.mark.worker
def test_a_job_whose_message_the_broker_lost_is_sent_again_and_runs(
    private_broker, dataset, annotator, settings, tmp_path
):
    settings.IMPORT_ASYNC_BYTES = 100
    private_broker.start()
    job = post_import(client_for(annotator), dataset)
    assert (job.dispatch_count, private_broker.cli("llen", "default")) == (1, "1")
    private_broker.stop()  # it keeps nothing on disk: the message is gone
    private_broker.start()
    assert private_broker.cli("llen", "default") == "0"

    quick = {**private_broker.env, "DISPATCH_INTERVAL_S": "1", "DISPATCH_DEADLINE_S": "3"}
    with WorkerProcess("default", env=quick), BeatProcess(tmp_path / "beat", env=quick):
        wait_for(lambda: Job.objects.get(pk=job.pk).finished, timeout=120)

    job.refresh_from_db()
    assert job.status == "succeeded", job.error
    assert job.dispatch_count == 2
    assert dataset.examples.count() == len(PAIRS)


@pytest.mark.worker
def test_a_job_delivered_twice_runs_once(private_broker, dataset, annotator, settings):
    settings.IMPORT_ASYNC_BYTES = 100
    private_broker.start()
    job = post_import(client_for(annotator), dataset, on_duplicate="keep")  # a second import would double the pairs
    assert dispatch(job, job.task)  # the dispatcher sending again a message that was not lost after all
    assert private_broker.cli("llen", "default") == "2"

    with WorkerProcess("default", env=private_broker.env) as worker:
        wait_for(lambda: Job.objects.get(pk=job.pk).finished, timeout=120)
        wait_for(lambda: len(runs_of("import_job_task", worker)) == 2, timeout=60)

    job.refresh_from_db()
    assert job.status == "succeeded", job.error
    assert job.result["created"] == len(PAIRS)
    assert dataset.examples.count() == len(PAIRS)
