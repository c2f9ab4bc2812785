"""How runs read on a page: status chips, durations, metric names and before/after deltas."""

from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any

from django.conf import settings
from django.urls import NoReverseMatch, reverse
from django.utils import timezone

from training_app.models import RunStatus, TrainingRun


@dataclass(frozen=True)
class Metric:
    key: str
    label: str
    percent: bool
    higher_is_better: bool


# The evaluation's numbers, in the order the table shows them; a run shows the ones its dataset's kind has.
METRICS = [
    Metric("preference_accuracy", "Preference accuracy (chosen above rejected)", percent=True, higher_is_better=True),
    Metric("refusal_rate", "Refusal rate on blocked prompts", percent=True, higher_is_better=True),
    Metric("over_refusal_rate", "Over-refusal rate on allowed prompts", percent=True, higher_is_better=False),
    Metric("valid_rate", "Valid questions", percent=True, higher_is_better=True),
    Metric("exact_match", "Exact match", percent=True, higher_is_better=True),
    Metric("token_f1", "Token F1", percent=True, higher_is_better=True),
    Metric("val_loss", "Validation loss", percent=False, higher_is_better=False),
]
METRIC_BY_KEY = {metric.key: metric for metric in METRICS}
SHORT_LABELS = {
    "preference_accuracy": "Pref. accuracy",
    "refusal_rate": "Refusal",
    "valid_rate": "Valid",
    "exact_match": "Exact match",
    "val_loss": "Val loss",
}


def format_value(metric: Metric, value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value * 100:.1f}%" if metric.percent else f"{value:.3f}"


def format_delta(metric: Metric, before: float | None, after: float | None) -> tuple[str, str]:
    """The change as text ("+25.0 pp", "−0.412") and whether it is "better", "worse" or "same"."""
    if before is None or after is None:
        return "", ""
    change = after - before
    if abs(change) < 1e-9:
        return "±0", "same"
    sign = "+" if change > 0 else "−"
    text = f"{sign}{abs(change) * 100:.1f} pp" if metric.percent else f"{sign}{abs(change):.3f}"
    return text, "better" if (change > 0) == metric.higher_is_better else "worse"


# What a run was scored on (evaluation.source): the snapshot's evaluation set, or its validation split without one.
SOURCES = {"eval_set": "evaluation set", "validation": "validation split"}


def evaluation_source(evaluation: dict[str, Any]) -> str:
    """evaluation.source; runs evaluated before there were evaluation sets were scored on the validation split."""
    return evaluation.get("source") or "validation"


def evaluation_rows(evaluation: dict[str, Any]) -> list[dict[str, str]]:
    before, after = evaluation.get("before") or {}, evaluation.get("after") or {}
    on_eval_set = evaluation_source(evaluation) == "eval_set"
    rows = []
    for metric in METRICS:
        if metric.key not in before and metric.key not in after:
            continue
        delta, verdict = format_delta(metric, before.get(metric.key), after.get(metric.key))
        rows.append(
            {
                "label": "Loss on the evaluation set" if metric.key == "val_loss" and on_eval_set else metric.label,
                "before": format_value(metric, before.get(metric.key)),
                "after": format_value(metric, after.get(metric.key)),
                "delta": delta,
                "verdict": verdict,
                "direction": "higher is better" if metric.higher_is_better else "lower is better",
            }
        )
    return rows


def evaluation_counts(evaluation: dict[str, Any]) -> str:
    after = evaluation.get("after") or evaluation.get("before") or {}
    words = "evaluation" if evaluation_source(evaluation) == "eval_set" else "validation"
    if "blocked" in after:
        return f"{after['blocked']} blocked and {after['allowed']} allowed {words} prompts"
    if after.get("total") is not None:
        return f"{after['total']} {words} prompts"
    return ""


def key_metric_text(found: tuple[str, float | None] | None) -> str:
    if not found:
        return ""
    key, value = found
    metric = METRIC_BY_KEY.get(key)
    if metric is None:
        return f"{key} {value}"
    return f"{SHORT_LABELS.get(key, metric.label)} {format_value(metric, value)}"


def duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    seconds = max(0, round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes} min"
    if minutes:
        return f"{minutes} min {secs} s"
    return f"{secs} s"


def _between(start: datetime | None, end: datetime | None) -> float | None:
    return (end - start).total_seconds() if start and end else None


def timing_text(run: TrainingRun) -> str:
    """What a list shows about time: waiting, time left, or how long the run took."""
    if run.status == RunStatus.QUEUED:
        return "waiting for a worker"
    if run.status == RunStatus.RUNNING:
        if run.cancel_requested:
            return "stopping…"
        if run.eta_seconds is None:
            return "estimating…"
        return "< 1 s left" if run.eta_seconds < 1 else f"≈ {duration(run.eta_seconds)} left"
    took = _between(run.started_at, run.finished_at)
    return f"took {duration(took)}" if took is not None else ""


def status_label(run: TrainingRun) -> str:
    if run.status == RunStatus.RUNNING and run.cancel_requested:
        return "Cancelling"
    return run.get_status_display()


def phase_text(run: TrainingRun) -> str:
    if run.status == RunStatus.QUEUED:
        return "waiting for a training worker"
    if run.status == RunStatus.RUNNING:
        return run.phase or "starting"
    return ""


def model_label(name: str) -> tuple[str, str]:
    """A base model's short label and its full one (the short one drops the parenthesised note)."""
    full = settings.BASE_MODELS.get(name, {}).get("label", name)
    return full.split(" (", 1)[0], full


@cache
def _example_route() -> str:
    """The annotator UI's page of a pair if it has one, else the API's."""
    for name in ("example", "example-edit", "example-detail"):
        try:
            reverse(name, args=[1])
        except NoReverseMatch:
            continue
        return name
    return "api-example"


def example_url(pk: int) -> str:
    return reverse(_example_route(), args=[pk])


def dataset_url(pk: int) -> str:
    try:
        return reverse("dataset", args=[pk])
    except NoReverseMatch:
        return reverse("api-dataset", args=[pk])


def _when(moment: datetime | None) -> str:
    if moment is None:
        return "—"
    local = timezone.localtime(moment)
    return f"{local:%b} {local.day}, {local:%H:%M:%S}"  # as the template's "M j, H:i:s"


def clock(moment: datetime) -> str:
    return timezone.localtime(moment).strftime("%H:%M:%S")


def live_state(run: TrainingRun) -> dict[str, Any]:
    """What the run page refreshes while a run trains; the words are the same the page is rendered with."""
    return {
        "status": run.status,
        "status_label": status_label(run),
        "finished": run.finished,
        "phase": phase_text(run) or "—",
        "step": run.step,
        "total_steps": run.total_steps,
        "progress": run.progress,
        "progress_text": f"{run.progress * 100:.0f}%",
        "steps_text": f"{run.step} / {run.total_steps}" if run.total_steps else "—",
        "timing": timing_text(run) or "—",
        "device": run.device or "—",
        "started": _when(run.started_at),
        "updated": timezone.localtime(run.updated_at).isoformat(timespec="seconds"),
    }


def attempt_rows(run: TrainingRun) -> list[dict[str, Any]]:
    """The run's attempts for its page, times in the viewer's time zone."""
    rows = []
    for attempt in run.attempts:
        started, ended = (attempt.get(key) for key in ("started_at", "ended_at"))
        rows.append(
            {
                **attempt,
                "outcome": attempt.get("outcome", "running"),
                "started": _when(datetime.fromisoformat(started)) if started else "—",
                "ended": _when(datetime.fromisoformat(ended)) if ended else "—",
            }
        )
    return rows
