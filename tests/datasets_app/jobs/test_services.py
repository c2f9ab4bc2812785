from datetime import timedelta

import pytest
from django.utils import timezone

from datasets_app.imports.services import import_job_run
from datasets_app.jobs.services import job_sweep
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
