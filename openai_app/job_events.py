"""A job's events and checkpoints as OpenAI shows them, read from its run: status changes, the run's log lines and
its training steps become `fine_tuning.job.event` objects; the trained model is its one checkpoint (intermediate
checkpoints come with checkpointing during training)."""

from datetime import datetime

from openai_app import catalog
from openai_app.models import FineTuningJob
from training_app.models import RunLog, RunMetric, RunStatus

# Events at the same instant keep this order: created, started, log lines and steps, the end.
_CREATED, _STARTED, _LINE, _END = range(4)


def _seconds(moment: datetime) -> int:
    return int(moment.timestamp())


def _event(key: tuple, event_id: str, at: datetime, message: str, *, level: str = "info", data: dict | None = None,
           kind: str = "message") -> tuple[tuple, dict]:  # fmt: skip
    body = {"object": "fine_tuning.job.event", "id": event_id, "created_at": _seconds(at), "level": level,
            "message": message, "data": data or {}, "type": kind}  # fmt: skip
    return key, body


def job_events(job: FineTuningJob) -> list[dict]:
    """Every event of the job, newest first (as OpenAI lists them); ids are stable, for `after`."""
    run, name = job.run, catalog.job_id(job.run)
    events = [_event((run.created_at, _CREATED, 0), f"ftevent-{name}-created", run.created_at,
                     f"Created fine-tuning job: {name}")]  # fmt: skip
    if run.started_at:
        events.append(
            _event((run.started_at, _STARTED, 0), f"ftevent-{name}-started", run.started_at, "Fine-tuning job started")
        )
    for line in RunLog.objects.filter(run=run).order_by("id"):
        events.append(_event((line.created_at, _LINE, line.pk), f"ftevent-log{line.pk}", line.created_at, line.line))
    steps = RunMetric.objects.filter(run=run, loss__isnull=False).order_by("id")
    for metric in steps:
        events.append(_step(metric, run.total_steps))
    events.sort(key=lambda pair: pair[0])
    if run.finished and run.finished_at:
        # The run's own last line ("succeeded") is written just after it ends: the end still comes last.
        events.append(_end(job, run.finished_at, after=events[-1][0]))
    events.reverse()
    return [body for _, body in events]


def _step(metric: RunMetric, total: int) -> tuple[tuple, dict]:
    data = {"step": metric.step, "total_steps": total, "train_loss": metric.loss, "learning_rate": metric.learning_rate}
    message = f"Step {metric.step}/{total}: training loss={metric.loss:.4f}"
    return _event((metric.created_at, _LINE, metric.pk), f"ftevent-step{metric.pk}", metric.created_at, message,
                  data=data, kind="metrics")  # fmt: skip


def _end(job: FineTuningJob, at: datetime, *, after: tuple) -> tuple[tuple, dict]:
    run, key, event_id = job.run, max((at, _END, 0), after), f"ftevent-{catalog.job_id(job.run)}-{job.run.status}"
    if run.status == RunStatus.SUCCEEDED:
        name = catalog.fine_tuned_name(run, job.workspace)
        return _event(key, event_id, at, f"The job has successfully completed; new fine-tuned model: {name}")
    if run.status == RunStatus.CANCELLED:
        return _event(key, event_id, at, "The job was cancelled")
    return _event(key, event_id, at, f"The job failed: {run.error or 'no reason was recorded'}", level="error")


def job_checkpoints(job: FineTuningJob) -> list[dict]:
    """The trained model of a succeeded job whose model was not deleted, with its last step's metrics."""
    run = job.run
    if run.status != RunStatus.SUCCEEDED or not run.artifact:
        return []
    summary, steps = run.summary or {}, run.summary.get("steps", run.step) if run.summary else run.step
    finished = run.finished_at or run.updated_at
    return [{
        "object": "fine_tuning.job.checkpoint",
        "id": f"ftckpt-{run.pk}-{steps}",
        "created_at": _seconds(finished),
        "fine_tuned_model_checkpoint": catalog.fine_tuned_name(run, job.workspace),
        "fine_tuning_job_id": catalog.job_id(run),
        "step_number": steps,
        "metrics": {"step": steps, "train_loss": summary.get("final_loss"), "valid_loss": summary.get("val_loss"),
                    "full_valid_loss": summary.get("val_loss")},
    }]  # fmt: skip
