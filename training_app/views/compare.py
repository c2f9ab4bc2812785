"""The comparison page: runs side by side (metrics with their change from the first run, the prompts that flipped,
every prompt's answers, the loss curves) and the data change between the first and the last run's snapshots."""

from collections.abc import Callable
from typing import Any

from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET

from datasets_app.views.textdiff import as_text, word_diff
from training_app.comparison import (
    METRIC_BY_NAME,
    Comparison,
    SnapshotDiff,
    run_comparison,
    run_ids_from_query,
    run_loss_curves,
    snapshot_diff,
)
from training_app.models import TrainingRun
from training_app.views import display
from training_app.views.judge import ab_summary_context

PAGE_DIFF_MAX = 100  # pairs shown per kind of change; the counts are complete
PAGE_PROMPTS_MAX = 1000  # prompts shown (flipped ones first); the API lists them all
MARKS = {"better": "▲", "worse": "▼", "same": "="}  # beside the colour, so the verdict does not rest on colour alone
FIELD_LABELS = {"system": "System prompt", "prompt": "Prompt", "response": "Response", "history": "Earlier turns",
                "tags": "Tags"}  # fmt: skip


@login_required
@require_GET
def run_compare(request: HttpRequest) -> HttpResponse:
    """`?runs=3,5,8`: the first run is the baseline. The runs list's form sends one `runs` per checked run; those are
    put oldest first (a redirect to the `?runs=` list), so flips read from the older run to the newer."""
    values = request.GET.getlist("runs")
    try:
        run_ids = run_ids_from_query(values)
    except ValidationError as error:
        context = {"problem": error.messages[0]}
        return render(request, "training_app/compare.html", context, status=400)
    if len(values) > 1:
        return redirect(f"{reverse('training-compare')}?runs={','.join(map(str, sorted(run_ids)))}")
    comparison = run_comparison(user=request.user, run_ids=run_ids)
    first, last = comparison.runs[0], comparison.runs[-1]
    curves = run_loss_curves(runs=comparison.runs)
    context = {
        "comparison": comparison,
        "runs": [_run_row(run, index) for index, run in enumerate(comparison.runs)],
        "first": first,
        "last": last,
        "metric_rows": _metric_rows(comparison),
        "prompt_rows": _prompt_rows(comparison),
        "api_url": f"{reverse('api-run-compare')}?runs={','.join(map(str, run_ids))}",
        "curves": [{"label": f"Run {run.pk}", **curves[run.pk]} for run in comparison.runs],
        **ab_summary_context(user=request.user, runs=comparison.runs),
        **_data_change(first, last),
    }
    return render(request, "training_app/compare.html", context)


def _run_row(run: TrainingRun, index: int) -> dict[str, Any]:
    short, full = display.model_label(run.base_model)
    return {
        "run": run,
        "series": index % 10,
        "status_label": display.status_label(run),
        "model_short": short,
        "model_full": full,
        "dataset_url": display.dataset_url(run.snapshot.dataset_id),
        "source": display.SOURCES.get(display.evaluation_source(run.evaluation), "") if run.evaluation else "",
    }


def _metric_rows(comparison: Comparison) -> list[dict[str, Any]]:
    """Each metric's value per run, and for every run after the first its change from the first."""
    rows = []
    for metric in comparison.metrics:
        spec = METRIC_BY_NAME[metric["name"]]
        shown = display.Metric(spec.name, spec.label, percent=spec.percent, higher_is_better=spec.better == "higher")
        baseline = metric["values"][0]
        cells = []
        for index, value in enumerate(metric["values"]):
            delta, verdict = display.format_delta(shown, baseline, value) if index else ("", "")
            cells.append(
                {"value": display.format_value(shown, value), "delta": delta, "verdict": verdict,
                 "mark": MARKS.get(verdict, "")}
            )  # fmt: skip
        rows.append({"name": spec.name, "label": spec.label, "better": spec.better, "cells": cells})
    return rows


def _prompt_rows(comparison: Comparison) -> list[dict[str, Any]]:
    pair_url = _url_pattern(display.example_url)
    prompts = comparison.prompts[:PAGE_PROMPTS_MAX]
    return [
        {
            **prompt,
            "cells": [
                {"run": run.pk, "ok": ok, "text": text}
                for run, ok, text in zip(comparison.runs, prompt["passed"], prompt["outputs"], strict=True)
            ],
            "url": pair_url(prompt["example"]) if prompt["example"] else "",
        }
        for prompt in prompts
    ]


def _url_pattern(url_of: Callable[[int], str]) -> Callable[[int], str]:
    """url_of, reversed once: a thousand reverse() calls cost a page of 1,000 prompts tens of milliseconds."""
    marker = 987654321987654321
    pattern = url_of(marker)
    return lambda pk: pattern.replace(str(marker), str(pk))


def _data_change(first: TrainingRun, last: TrainingRun) -> dict[str, Any]:
    """The snapshot diff from the first run's snapshot to the last's, with word diffs of the changed fields."""
    before, after = first.snapshot, last.snapshot
    if before.pk == after.pk:
        return {"diff_note": f"Both runs trained on the same snapshot (v{before.number}): the data did not change."}
    if before.dataset_id != after.dataset_id:
        return {"diff_note": "The first and the last run are on different datasets: their pairs are not compared."}
    try:
        diff = snapshot_diff(before=before, after=after, limit=PAGE_DIFF_MAX)
    except OSError:
        return {"diff_note": "A snapshot's file could not be read, so its pairs are not compared."}
    return {
        "diff": diff,
        "diff_before": before,
        "diff_after": after,
        "changed_rows": _changed_rows(diff),
        "diff_lists": [("Added", diff.added, "added"), ("Removed", diff.removed, "removed")],
        "page_diff_max": PAGE_DIFF_MAX,
    }


def _changed_rows(diff: SnapshotDiff) -> list[dict[str, Any]]:
    return [
        {
            "ref": change["ref"],
            "url": display.example_url(change["ref"]) if change["ref"] else "",
            "fields": [
                {
                    "label": FIELD_LABELS.get(name, name),
                    "pieces": word_diff(as_text(name, change["before"][name]), as_text(name, change["after"][name])),
                }
                for name in change["changed_fields"]
            ],
        }
        for change in diff.changed
    ]
