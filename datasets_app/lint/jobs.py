"""Checking a whole dataset as a job: now when it is small, else queued on a worker."""

import logging

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from datasets_app.curation.selectors import role_require
from datasets_app.jobs.services import (
    job_beating,
    job_claim,
    job_create,
    job_dispatch_again,
    job_finish,
    job_progress,
)
from datasets_app.lint.report import LintReport, dataset_lint_refresh
from datasets_app.models import Dataset, Job, JobStatus, Role

logger = logging.getLogger(__name__)
LINT_SUMMARY = ("checked", "pairs_with_problems", "counts")  # what a finished check keeps on its job row


def dataset_lint_start(*, dataset: Dataset, user: AbstractBaseUser) -> LintReport | Job:
    """Check every pair of a dataset and store the problems: now, or as a job when it has over LINT_SYNC_MAX pairs.

    Either way any member may: both paths check the role themselves.
    """
    if dataset.examples.count() > settings.LINT_SYNC_MAX:
        return lint_job_create(dataset=dataset, user=user)
    return dataset_lint_refresh(dataset=dataset, user=user)


@transaction.atomic
def lint_job_create(*, dataset: Dataset, user: AbstractBaseUser) -> Job:
    """Queue a whole-dataset check; a check that is queued and not yet started is reused, not doubled."""
    role_require(user=user, workspace=dataset.workspace, role=Role.ANNOTATOR)
    # Two requests at once queue one check. FOR NO KEY UPDATE: an import's foreign-key checks hold FOR KEY SHARE
    # on the dataset row while they commit, and this must not wait for them.
    Dataset.objects.select_for_update(no_key=True).filter(pk=dataset.pk).first()
    from datasets_app.lint.tasks import lint_job_task

    # Every queued job's task is sent until a worker starts it (the outbox), so a queued check will run.
    waiting = Job.objects.filter(
        dataset=dataset, kind=Job.Kind.LINT, status=JobStatus.QUEUED, task=lint_job_task.name
    ).first()
    if waiting is not None:
        job_dispatch_again(waiting)  # its send failed (the broker was down): try now rather than at the next pass
        return waiting
    return job_create(kind=Job.Kind.LINT, dataset=dataset, user=user, task=lint_job_task.name)


def lint_job_run(*, job_id: int) -> None:
    """Run a queued whole-dataset check once; progress and the counts go to the job row."""
    job = job_claim(job_id)
    if job is None:
        return
    with job_beating(job):
        try:
            report = dataset_lint_refresh(
                dataset=job.dataset,
                user=job.created_by,
                progress=lambda phase, fraction: job_progress(job, phase, fraction),
            )
        except Exception as error:
            logger.exception("lint job %s failed", job.pk)
            job_finish(job, status=JobStatus.FAILED, error=f"the check failed: {error}", phase="failed")
        else:
            summary = {key: value for key, value in report.as_dict(limit=0).items() if key in LINT_SUMMARY}
            job_finish(job, status=JobStatus.SUCCEEDED, result=summary, progress=1.0, phase="done")
