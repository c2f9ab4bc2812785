"""A worker killed while it saved a checkpoint or a merged export leaves a file nothing names: the periodic sweep
deletes it once it is an hour old, and never a file a run or a finished export names."""

from datetime import timedelta

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.utils import timezone

from datasets_app.models import Job, JobStatus
from tests.training_app.test_playground import succeeded_run
from training_app.checkpoints import stray_checkpoints_sweep
from training_app.tasks import stray_checkpoints_sweep_task

pytestmark = pytest.mark.django_db


def stored(name: str) -> str:
    return default_storage.save(name, ContentFile(b"half-written"))


def test_the_sweep_deletes_old_files_nothing_names_and_keeps_the_rest(guardrail_dataset, lead):
    run = succeeded_run(guardrail_dataset)
    kept_checkpoint = stored(f"checkpoints/run-{run.pk}/attempt-1-step-3.pt")
    run.checkpoints = [{"step": 3, "file": kept_checkpoint}]
    run.save()
    kept_export = stored(f"exports/run-{run.pk}-merged-job-1.zip")
    Job.objects.create(kind=Job.Kind.EXPORT, dataset=guardrail_dataset, status=JobStatus.SUCCEEDED,
                       params={"run": run.pk, "format": "merged"}, result={"file": kept_export})  # fmt: skip
    stray_checkpoint = stored(f"checkpoints/run-{run.pk}/attempt-1-step-6.pt")
    stray_export = stored(f"exports/run-{run.pk}-merged-job-2.zip")

    stray_checkpoints_sweep_task()  # young files may belong to a save still under way: kept
    assert default_storage.exists(stray_checkpoint)
    assert default_storage.exists(stray_export)

    assert stray_checkpoints_sweep(now=timezone.now() + timedelta(hours=2)) >= 2  # with earlier tests' leftovers
    assert not default_storage.exists(stray_checkpoint)
    assert not default_storage.exists(stray_export)
    assert default_storage.exists(kept_checkpoint)
    assert default_storage.exists(kept_export)
