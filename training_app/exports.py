"""Exports of a run's model for serving elsewhere: the merged model (a LoRA folded into the base weights) is built
once by a worker as a job, stored as a zip through the storage API, and downloaded from there."""

from __future__ import annotations

import logging
import tempfile
import zipfile
from pathlib import Path

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.files import File
from django.core.files.storage import default_storage
from django.db import transaction

from datasets_app.jobs.services import job_beating, job_claim, job_create, job_finish, job_progress
from datasets_app.models import Job, JobStatus
from training_app.models import RunStatus, TrainingRun

logger = logging.getLogger(__name__)

FORMATS = ("adapter", "merged")
EXPORT_TASK = "training_app.tasks.run_export_task"
EXPORTS = "exports"  # the storage folder of built exports
ACTIVE = (JobStatus.QUEUED, JobStatus.RUNNING)


class NoModel(Exception):
    """The run has no trained model to export (it did not succeed, or its model was deleted)."""


def _jobs(run: TrainingRun):  # type: ignore[no-untyped-def]
    return Job.objects.filter(kind=Job.Kind.EXPORT, params__run=run.pk, params__format="merged")


def merged_export_file(run: TrainingRun) -> str | None:
    """The stored name of the run's merged model zip, once a job has built it and while the model exists."""
    if not run.artifact:
        return None
    built = _jobs(run).filter(status=JobStatus.SUCCEEDED).order_by("-finished_at", "-id").first()
    name = built.result.get("file") if built else None
    return name if name and default_storage.exists(name) else None


def merged_export_job(run: TrainingRun) -> Job | None:
    """The latest job building the run's merged model (any status), for showing its progress or its error."""
    return _jobs(run).order_by("-created_at", "-id").first()


@transaction.atomic
def merged_export_start(*, run: TrainingRun, user: AbstractBaseUser) -> str | Job:
    """The merged model's stored name when built; otherwise the job building it, started if none is under way.

    The run's row is locked meanwhile, so two requests at once start one job.
    """
    locked = TrainingRun.objects.select_for_update().select_related("snapshot").get(pk=run.pk)
    if locked.status != RunStatus.SUCCEEDED or not locked.artifact:
        raise NoModel(f"run {locked.pk} has no trained model to export (it has not succeeded, or it was deleted)")
    name = merged_export_file(locked)
    if name:
        return name
    active = _jobs(locked).filter(status__in=ACTIVE).first()
    if active:
        return active
    params = {"run": locked.pk, "format": "merged"}
    return job_create(kind=Job.Kind.EXPORT, dataset=locked.snapshot.dataset, user=user, task=EXPORT_TASK, params=params)


def merged_export_forget(run: TrainingRun) -> None:
    """Delete the run's built merged models from storage once the transaction commits (its model is deleted)."""
    names = [job.result.get("file") for job in _jobs(run).filter(status=JobStatus.SUCCEEDED)]
    transaction.on_commit(lambda: [default_storage.delete(name) for name in names if name])


def merged_export_build(*, job_id: int) -> None:
    """Run a queued export job once: merge, zip, store, and end the job with the stored name."""
    job = job_claim(job_id)
    if job is None:
        return
    with job_beating(job):
        try:
            _build(job)
        except TrainingRun.DoesNotExist:
            job_finish(job, status=JobStatus.FAILED, error="the run was deleted before its export ran", phase="failed")
        except FileNotFoundError as error:  # its model was deleted meanwhile
            job_finish(job, status=JobStatus.FAILED, error=str(error), phase="failed")
        except Exception as error:
            logger.exception("export job %s failed", job.pk)
            job_finish(job, status=JobStatus.FAILED, error=f"the export failed: {error}", phase="failed")


def _build(job: Job) -> None:
    from training_app.execution import base_model_dir, tuned_model_dir
    from training_app.ml.export import export_merged

    run = TrainingRun.objects.get(pk=job.params["run"])
    job_progress(job, "merging", 0.1)
    with tempfile.TemporaryDirectory(dir=settings.MODEL_CACHE_DIR) as tmp:
        folder = export_merged(base_model_dir(run.base_model), tuned_model_dir(run), run.method, Path(tmp) / "model")
        job_progress(job, "zipping", 0.5)
        archive = _zip(folder, Path(tmp) / "merged.zip", top=f"instructory-run-{run.pk}-merged")
        job_progress(job, "storing", 0.7)
        with archive.open("rb") as handle:
            name = default_storage.save(f"{EXPORTS}/run-{run.pk}-merged-job-{job.pk}.zip", File(handle))
        size = archive.stat().st_size
    result = {"run": run.pk, "format": "merged", "file": name, "bytes": size}
    if not job_finish(job, status=JobStatus.SUCCEEDED, result=result, progress=1.0, phase="done"):
        default_storage.delete(name)  # the sweeper failed the job meanwhile: nothing names the file


def _zip(folder: Path, target: Path, *, top: str) -> Path:
    """The folder's files under one top folder; weights are stored as they are (they hardly compress)."""
    with zipfile.ZipFile(target, "w") as archive:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                packed = zipfile.ZIP_STORED if path.suffix == ".safetensors" else zipfile.ZIP_DEFLATED
                archive.write(path, f"{top}/{path.relative_to(folder)}", compress_type=packed)
    return target
