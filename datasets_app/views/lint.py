"""A dataset's lint: the report (problems by code, near duplicates side by side), checking it again, and the
settings that decide what is checked (its template, and whether failing pairs may be approved)."""

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse, QueryDict
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from datasets_app.curation import selectors, services
from datasets_app.errors import InUse
from datasets_app.lint.jobs import dataset_lint_start
from datasets_app.lint.report import dataset_lint_stored
from datasets_app.models import Dataset, Job, JobStatus, Role
from datasets_app.views.blueprint_forms import DatasetSettingsForm
from datasets_app.views.common import role_errors_are_403

REPORT_ROWS = 500
NEAR_DUPLICATE_ROWS = 100


@login_required
@require_http_methods(["GET", "POST"])
@role_errors_are_403
def dataset_lint(request: HttpRequest, pk: int) -> HttpResponse:
    """GET: the stored findings. POST ("Check dataset"): check every pair again (a job when they are many)."""
    dataset = selectors.dataset_get(user=request.user, pk=pk)
    if request.method == "POST":
        report = dataset_lint_start(dataset=dataset, user=request.user)
        if isinstance(report, Job):
            return redirect("job", pk=report.pk)
        found, pairs = sum(report.counts.values()), len(report.by_example)
        messages.success(
            request,
            f"Checked {report.checked} pair{'' if report.checked == 1 else 's'} of {dataset.name}: "
            f"{found} problem{'' if found == 1 else 's'} in {pairs} pair{'' if pairs == 1 else 's'}.",
        )
        return redirect("dataset-lint", pk=dataset.pk)
    report = dataset_lint_stored(dataset=dataset)
    context = {
        "dataset": dataset,
        "linted_at": report.linted_at,
        "checking": dataset.jobs.filter(kind=Job.Kind.LINT, status__in=(JobStatus.QUEUED, JobStatus.RUNNING)).first(),
        "counts": sorted(((code, n) for code, n in report.counts.items() if n), key=lambda item: -item[1]),
        "pairs_with_problems": len(report.by_example),
        "problems": _with_examples(dataset, report.problems[:REPORT_ROWS]),
        "more": max(len(report.problems) - REPORT_ROWS, 0),
        "near_duplicates": _near_duplicates(dataset, report.near_duplicates[:NEAR_DUPLICATE_ROWS]),
        "more_near": max(len(report.near_duplicates) - NEAR_DUPLICATE_ROWS, 0),
    }
    return render(request, "datasets_app/lint.html", context)


def _examples(dataset: Dataset, ids: set[int]) -> dict[int, Any]:
    return dataset.examples.in_bulk(list(ids))


def _with_examples(dataset: Dataset, problems: list[dict[str, Any]]) -> list[dict[str, Any]]:
    found = _examples(dataset, {problem["example"] for problem in problems})
    return [{**problem, "pair": found.get(problem["example"])} for problem in problems]


def _near_duplicates(dataset: Dataset, pairs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    found = _examples(dataset, {pair[side] for pair in pairs for side in ("a", "b")})
    return [
        {"a": found[pair["a"]], "b": found[pair["b"]], "similarity": pair["similarity"]}
        for pair in pairs
        if pair["a"] in found and pair["b"] in found
    ]


@login_required
@require_http_methods(["GET", "POST"])
@role_errors_are_403
def dataset_settings(request: HttpRequest, pk: int) -> HttpResponse:
    """Which template checks the dataset's pairs, whether pairs that fail it may be approved, and whether snapshots
    may have training prompts that repeat evaluation prompts (leads)."""
    dataset = selectors.dataset_get(user=request.user, pk=pk)
    selectors.role_require(user=request.user, workspace=dataset.workspace, role=Role.LEAD)
    form = _settings_form(request, dataset, request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            services.dataset_update(dataset=dataset, user=request.user, **form.cleaned_data)
        except ValidationError as error:
            for message in error.messages:
                form.add_error(None, message)
        else:
            messages.success(request, "Saved the dataset's checks. Check the dataset to see its pairs against them.")
            return redirect("dataset", pk=dataset.pk)
    status = 400 if form.is_bound else 200
    return render(request, "datasets_app/dataset_settings.html", {"dataset": dataset, "form": form}, status=status)


@login_required
@require_POST
@role_errors_are_403
def dataset_delete(request: HttpRequest, pk: int) -> HttpResponse:
    """The settings page's "Delete this dataset" (leads). One that fine-tuning runs use stays, and the page says
    why (409), as the API does."""
    dataset = selectors.dataset_get(user=request.user, pk=pk)
    try:
        services.dataset_delete(dataset=dataset, user=request.user)
    except InUse as refused:
        context = {
            "dataset": dataset,
            "form": _settings_form(request, dataset, None),
            "refused": refused.messages[0],
        }
        return render(request, "datasets_app/dataset_settings.html", context, status=409)
    messages.success(request, f"Deleted the dataset {dataset.name} with its pairs.")
    return redirect("home")


def _settings_form(request: HttpRequest, dataset: Dataset, data: QueryDict | None) -> DatasetSettingsForm:
    templates = selectors.template_list(user=request.user, workspace=dataset.workspace)
    initial = {
        "template": dataset.template_id,
        "require_valid": dataset.require_valid,
        "refuse_eval_overlap": dataset.refuse_eval_overlap,
    }
    return DatasetSettingsForm(data, templates=templates, initial=initial)
