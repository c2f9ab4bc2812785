import os
from datetime import timedelta

import pytest
from django.core.files.base import ContentFile
from django.utils import timezone

from datasets_app.imports.services import import_job_run
from datasets_app.jobs.services import job_sweep
from datasets_app.jobs.tasks import stray_uploads_sweep_task
from datasets_app.models import Job

pytestmark = pytest.mark.django_db


def running_job(dataset, seconds_since_heartbeat):
    beat = timezone.now() - timedelta(seconds=seconds_since_heartbeat)
    return Job.objects.create(kind="import", dataset=dataset, status="running", started_at=beat, heartbeat_at=beat)


def test_sweeper_fails_jobs_whose_worker_went_silent(dataset):
    silent, alive = running_job(dataset, 120), running_job(dataset, 10)
    assert job_sweep() == 1
    silent.refresh_from_db()
    assert silent.status == "failed"
    assert "stopped responding" in silent.error
    alive.refresh_from_db()
    assert alive.status == "running"


def test_a_redelivered_import_task_does_nothing(dataset):
    finished = Job.objects.create(kind="import", dataset=dataset, status="succeeded", result={"created": 3})
    import_job_run(job_id=finished.pk)
    finished.refresh_from_db()
    assert (finished.status, finished.result) == ("succeeded", {"created": 3})
    assert dataset.examples.count() == 0


def stored(name: str, *, age: timedelta = timedelta(0)) -> str:
    """A file saved in the uploads' storage, last changed `age` ago; returns its name."""
    storage = Job._meta.get_field("file").storage
    name = storage.save(name, ContentFile(b'{"prompt": "Hi?", "response": "Hello."}\n'))
    moment = (timezone.now() - age).timestamp()
    os.utime(storage.path(name), (moment, moment))  # the sweeper itself asks the storage API (works on S3 too)
    return name


def test_the_sweeper_deletes_the_uploads_of_jobs_that_ended(dataset):
    storage = Job._meta.get_field("file").storage
    ended = [
        Job.objects.create(kind="import", dataset=dataset, status=status, file=stored("jobs/2026/01/01/a.jsonl"))
        for status in ("succeeded", "failed")
    ]
    waiting = Job.objects.create(kind="import", dataset=dataset, file=stored("jobs/2026/01/01/b.jsonl"))

    job_sweep()

    for job in ended:
        assert not storage.exists(job.file.name)
        job.refresh_from_db()
        assert not job.file
    waiting.refresh_from_db()
    assert storage.exists(waiting.file.name)


def test_the_stray_sweep_deletes_hour_old_uploads_no_job_names_and_keeps_fresh_and_named_ones(dataset):
    storage = Job._meta.get_field("file").storage
    orphan = stored("jobs/2026/01/02/orphan.jsonl", age=timedelta(hours=2))  # its request died before saving the job
    fresh = stored("jobs/2026/01/02/fresh.jsonl", age=timedelta(minutes=5))  # its request may be saving the job now
    named = stored("jobs/2026/01/02/named.jsonl", age=timedelta(hours=2))
    Job.objects.create(kind="import", dataset=dataset, file=named)

    job_sweep()  # the frequent sweep leaves storage alone
    assert storage.exists(orphan)
    stray_uploads_sweep_task()

    assert not storage.exists(orphan)
    assert storage.exists(fresh)
    assert storage.exists(named)
    storage.delete(fresh)
    storage.delete(named)
