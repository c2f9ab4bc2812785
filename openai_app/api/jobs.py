"""/v1/fine_tuning/jobs: create (lead keys), list, retrieve, cancel (lead keys), events and checkpoints."""

from datetime import timedelta

from django.core.exceptions import ValidationError
from django.utils import timezone
from rest_framework.parsers import JSONParser
from rest_framework.request import Request
from rest_framework.response import Response

from openai_app import catalog, jobs
from openai_app.api.common import V1View, page
from openai_app.api.errors import OpenAIError
from openai_app.job_events import job_checkpoints, job_events
from openai_app.job_request import job_request
from openai_app.models import FineTuningJob
from training_app.models import RunStatus

LIST_DEFAULT, LIST_MAX = 20, 100


def job_object(job: FineTuningJob) -> dict:
    run = job.run
    hyperparameters = {"n_epochs": run.hyperparameters.get("epochs"), "batch_size": run.hyperparameters.get("batch_size"),
                       "learning_rate_multiplier": job.learning_rate_multiplier}  # fmt: skip
    succeeded = run.status == RunStatus.SUCCEEDED
    return {
        "object": "fine_tuning.job",
        "id": catalog.job_id(run),
        "model": run.base_model,
        "created_at": int(job.created_at.timestamp()),
        "finished_at": int(run.finished_at.timestamp()) if run.finished and run.finished_at else None,
        "status": run.status,
        "fine_tuned_model": catalog.fine_tuned_name(run, job.workspace) if succeeded else None,
        "organization_id": catalog.workspace_slug(job.workspace),
        "training_file": job.training_file,
        "validation_file": job.validation_file or None,
        "result_files": [job.result_file.public_id] if job.result_file else [],
        "trained_tokens": run.summary.get("train_tokens") if succeeded else None,
        "error": _error(job),
        "hyperparameters": hyperparameters,
        "method": {"type": "supervised", "supervised": {"hyperparameters": hyperparameters}},
        "seed": job.seed,
        "user_provided_suffix": job.suffix or None,
        "estimated_finish": _estimated_finish(job),
        "integrations": [],
        "metadata": job.metadata,
    }


def _error(job: FineTuningJob) -> dict | None:
    if job.run.status != RunStatus.FAILED:
        return None
    return {"code": "training_failed", "message": job.run.error or "The run failed.", "param": None}


def _estimated_finish(job: FineTuningJob) -> int | None:
    run = job.run
    if run.status != RunStatus.RUNNING or run.eta_seconds is None:
        return None
    return int((timezone.now() + timedelta(seconds=run.eta_seconds)).timestamp())


class JobListView(V1View):
    parser_classes = [JSONParser]

    def get(self, request: Request) -> Response:
        """The workspace's jobs, newest first, `limit` at a time after the job `after`."""
        found = jobs.job_list(workspace=self.access(request).workspace)
        after = request.query_params.get("after")
        if after:
            found = found.filter(run_id__lt=_job(request, after, param="after").run_id)
        return Response(_page(list(found[: _limit(request) + 1]), _limit(request), job_object))

    def post(self, request: Request) -> Response:
        """Start a fine-tuning job: a dataset of the file's pairs, a snapshot and a run, queued for a worker."""
        access = self.access(request)
        access.require("lead")  # before the body is read: an annotator key is refused whatever it sends
        try:
            job = jobs.job_create(access=access, request=job_request(request.data))
        except ValidationError as error:  # each message names its parameter itself, as OpenAI's do
            param, messages = (
                next(iter(error.message_dict.items())) if hasattr(error, "error_dict") else (None, error.messages)
            )
            raise OpenAIError(" ".join(messages), param=param) from error
        return Response(job_object(job))


class JobDetailView(V1View):
    def get(self, request: Request, job_id: str) -> Response:
        return Response(job_object(_job(request, job_id)))


class JobCancelView(V1View):
    def post(self, request: Request, job_id: str) -> Response:
        """Cancel a job (lead keys): a queued job ends cancelled now, a running one within seconds."""
        job = jobs.job_cancel(access=self.access(request), job=_job(request, job_id))
        return Response(job_object(job))


class JobEventsView(V1View):
    def get(self, request: Request, job_id: str) -> Response:
        """The job's status changes, log lines and training steps, newest first, `limit` at a time after `after`."""
        return Response(_list_after(request, job_events(_job(request, job_id))))


class JobCheckpointsView(V1View):
    def get(self, request: Request, job_id: str) -> Response:
        """The job's checkpoints: its trained model, once it succeeded."""
        return Response(_list_after(request, job_checkpoints(_job(request, job_id))))


def _job(request: Request, job_id: str, *, param: str = "id") -> FineTuningJob:
    found = jobs.job_get(workspace=request.auth.workspace, job_id=job_id)
    if found is None:
        raise OpenAIError(f"No such fine-tuning job: {job_id[:60]}", status_code=404, param=param)
    return found


def _list_after(request: Request, items: list[dict]) -> dict:
    """A page of `items` (already in order) after the one whose id is `after`."""
    after = request.query_params.get("after")
    if after:
        ids = [item["id"] for item in items]
        if after not in ids:
            raise OpenAIError(f"after: no such id {after[:60]} in this list", param="after")
        items = items[ids.index(after) + 1 :]
    limit = _limit(request)
    return _page(items[: limit + 1], limit, lambda item: item)


def _page(rows: list, limit: int, shape) -> dict:  # type: ignore[no-untyped-def]
    data = [shape(row) for row in rows[:limit]]
    return page(data, has_more=len(rows) > limit, first_id=data[0]["id"] if data else None,
                last_id=data[-1]["id"] if data else None)  # fmt: skip


def _limit(request: Request) -> int:
    value = request.query_params.get("limit")
    if value is None:
        return LIST_DEFAULT
    if not value.isascii() or not value.isdigit() or not 1 <= int(value) <= LIST_MAX:
        raise OpenAIError(f"limit must be a whole number from 1 to {LIST_MAX}", param="limit")
    return int(value)
