"""Home, the dataset page (list, filters, search, bulk actions) and the work queues."""

from dataclasses import replace

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.db import connection
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from datasets_app.blueprints.generators import generator_choices
from datasets_app.curation import invitations, queues, selectors, services
from datasets_app.models import ROLE_RANK, Dataset, ExampleSplit, ExampleStatus, Membership, Role
from datasets_app.views.common import (
    ListFilters,
    is_htmx,
    parse_id,
    role_errors_are_403,
    safe_next,
)
from datasets_app.views.forms import BulkForm, DatasetForm

BULK_DONE = {
    "submit": "submitted",
    "approve": "approved",
    "reject": "rejected",
    "add_tag": "tagged",
    "remove_tag": "untagged",
    "move_eval": "moved to the evaluation set",
    "move_train": "moved to the training set",
    "delete": "deleted",
}
QUEUE_LABELS = {"review": "pairs waiting for review", "draft": "drafts to finish", "rejected": "rejected pairs to fix"}
DOWNLOADS = (
    ("pairs", "Pairs (JSON Lines)"),
    ("csv", "CSV"),
    ("alpaca", "Alpaca (JSON)"),
    ("sharegpt", "ShareGPT (JSON)"),
    ("openai", "OpenAI chat fine-tuning (JSON Lines)"),
    ("parquet", "Parquet"),
)
PREFERENCE_DOWNLOADS = (
    ("trl", "TRL preference: prompt, chosen, rejected (JSON Lines)"),
    ("trl_chat", "TRL preference, conversational (JSON Lines)"),
    ("openai_preference", "OpenAI preference fine-tuning (JSON Lines)"),
    ("parquet", "Parquet: prompt, chosen, rejected"),
)


@login_required
@require_GET
def home(request: HttpRequest) -> HttpResponse:
    datasets = list(selectors.dataset_list(user=request.user).order_by("workspace__name", "name"))
    counts = selectors.dataset_status_counts(datasets=datasets)
    roles = dict(Membership.objects.filter(user=request.user).values_list("workspace_id", "role"))
    workspaces = [
        {
            "workspace": workspace,
            "is_lead": ROLE_RANK[Role(roles[workspace.pk])] >= ROLE_RANK[Role.LEAD],
            "datasets": [
                {"dataset": dataset, "counts": counts[dataset.pk]}
                for dataset in datasets
                if dataset.workspace_id == workspace.pk
            ],
        }
        for workspace in selectors.workspace_list(user=request.user)
    ]
    invited = invitations.invitation_list_for_user(user=request.user)
    return render(request, "datasets_app/home.html", {"workspaces": workspaces, "invitations": invited})


@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """For load balancers: answers once the database does."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return JsonResponse({"status": "ok"})


@login_required
@require_GET
def dataset_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """The pairs of a dataset, 50 at a time by id, narrowed by search and filters; htmx gets just the table."""
    dataset = selectors.dataset_get(user=request.user, pk=pk)
    filters = ListFilters.from_query(request.GET)
    examples = selectors.example_filter_by_id(dataset=dataset, **filters.selector_kwargs()).select_related("created_by")
    page = selectors.example_page(
        examples=examples, after=parse_id(request.GET.get("after")), before=parse_id(request.GET.get("before"))
    )
    context = {
        "dataset": dataset,
        "filters": filters,
        "page": page,
        "is_lead": selectors.can_review(user=request.user, workspace=dataset.workspace),
        "list_query": filters.query(),
        "here": request.get_full_path(),
        "download_formats": PREFERENCE_DOWNLOADS if dataset.is_preference else DOWNLOADS,
    }
    if is_htmx(request) and request.headers.get("HX-Target") == "examples":
        return render(request, "datasets_app/partials/example_table.html", context)
    counts = selectors.dataset_status_counts(datasets=[dataset])[dataset.pk]
    context["counts"] = counts
    context["tabs"] = [
        {
            "value": value,
            "label": label,
            "count": counts[value or "total"],
            "query": replace(filters, status=value).query(),
            "active": filters.status == value,
        }
        for value, label in [("", "All"), *ExampleStatus.choices]
    ]
    context["split_tabs"] = [
        {
            "value": value,
            "label": label,
            "count": counts.get(value or "total"),
            "query": replace(filters, split=value).query(),
            "active": filters.split == value,
        }
        for value, label in [("", "Both sets"), *ExampleSplit.choices]
    ]
    context["members"] = selectors.member_list(workspace=dataset.workspace)
    context.update(_lint_context(dataset, filters, is_lead=context["is_lead"]))
    return render(request, "datasets_app/dataset.html", context)


def _lint_context(dataset: Dataset, filters: ListFilters, *, is_lead: bool) -> dict[str, object]:
    """The problems badge and its filter, and for leads the model backends that can draft responses."""
    return {
        "problem_pairs": selectors.example_filter(dataset=dataset, with_problems=True).count(),
        "problems_query": replace(filters, problems="" if filters.problems else "1").query(),
        "generators": generator_choices(workspace=dataset.workspace) if is_lead else [],
    }


@login_required
@require_http_methods(["GET", "POST"])
@role_errors_are_403
def dataset_new(request: HttpRequest, pk: int) -> HttpResponse:
    """A new dataset in a workspace, of any kind (leads); outsiders get 404, annotators 403."""
    workspace = get_object_or_404(selectors.workspace_list(user=request.user), pk=pk)
    selectors.role_require(user=request.user, workspace=workspace, role=Role.LEAD)
    form = DatasetForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            dataset = services.dataset_create(workspace=workspace, user=request.user, **form.cleaned_data)
        except ValidationError as error:
            for field, errors in error.message_dict.items():
                form.add_error(field if field in form.fields else None, errors)
        else:
            messages.success(request, f"Created the dataset {dataset.name}.")
            return redirect("dataset", pk=dataset.pk)
    status = 400 if form.is_bound else 200
    return render(request, "datasets_app/dataset_new.html", {"workspace": workspace, "form": form}, status=status)


@login_required
@require_POST
@role_errors_are_403
def dataset_bulk(request: HttpRequest, pk: int) -> HttpResponse:
    """One action on the checked pairs, through the services, in one transaction; deleting asks first."""
    dataset = selectors.dataset_get(user=request.user, pk=pk)
    back = safe_next(request, reverse("dataset", args=[dataset.pk]))
    form = BulkForm(request.POST)
    if not form.is_valid():
        for errors in form.errors.values():
            for error in errors:
                messages.error(request, error)
        return redirect(back)
    data = form.cleaned_data
    action = data["action"]
    # The role is checked before anything else, so an annotator never even sees the confirmation page.
    selectors.role_require(user=request.user, workspace=dataset.workspace, role=queues.BULK_ACTIONS[action])
    if action == "delete" and not data["confirm"]:
        chosen = dataset.examples.filter(pk__in=list(data["versions"])).order_by("id")
        return render(
            request,
            "datasets_app/bulk_confirm.html",
            {"dataset": dataset, "examples": chosen, "versions": data["versions"], "back": back},
        )
    try:
        outcome = queues.examples_bulk_action(
            dataset=dataset,
            user=request.user,
            versions=data["versions"],
            action=action,
            comment=data["comment"],
            tag=data["tag"],
        )
    except ValidationError as error:
        for message in error.messages:
            messages.error(request, message)
        return redirect(back)
    done = len(outcome.changed)
    messages.success(request, f"{done} pair{'' if done == 1 else 's'} {BULK_DONE[action]}.")
    if outcome.skipped:
        reasons = "; ".join(f"#{pk}: {why}" for pk, why in outcome.skipped[:20])
        more = f" and {len(outcome.skipped) - 20} more" if len(outcome.skipped) > 20 else ""
        messages.warning(request, f"{len(outcome.skipped)} skipped ({reasons}{more}).")
    return redirect(back)


@login_required
@require_POST
@role_errors_are_403
def dataset_queue(request: HttpRequest, pk: int, queue: str) -> HttpResponse:
    """Hand out the oldest pair of a queue that nobody else is working on, and open it."""
    if queue not in queues.QUEUE_STATUSES:
        raise Http404("no such queue")
    dataset = selectors.dataset_get(user=request.user, pk=pk)
    example = queues.example_lease_next(
        dataset=dataset, user=request.user, queue=queue, after_id=parse_id(request.POST.get("after"))
    )
    if example is None:
        messages.info(request, f"No {QUEUE_LABELS[queue]} in {dataset.name} right now.")
        return redirect("dataset", pk=dataset.pk)
    return redirect(f"{reverse('example', args=[example.pk])}?queue={queue}")
