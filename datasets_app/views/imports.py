"""Adding pairs: the new-example form, the import page (same import service as the API) and job progress."""

from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse, QueryDict
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from django.views.decorators.http import require_GET, require_http_methods

from datasets_app.blueprints.generators import generator_choices
from datasets_app.curation import selectors, services
from datasets_app.errors import DuplicateExample
from datasets_app.imports.services import ImportRejected, import_upload
from datasets_app.imports.uploads import bound_uploads, too_large_message, upload_refusal, upload_was_cut
from datasets_app.models import HISTORY_ROLES, Dataset, Job, Template
from datasets_app.views.common import is_htmx, role_errors_are_403
from datasets_app.views.forms import ImportForm, NewExampleForm, posted_turns
from datasets_app.views.markdown import render_markdown
from datasets_app.views.textdiff import sides_context


@login_required
@require_http_methods(["GET", "POST"])
@role_errors_are_403
def example_new(request: HttpRequest, pk: int) -> HttpResponse:
    dataset = selectors.dataset_get(user=request.user, pk=pk)
    form = NewExampleForm(request.POST or None)
    duplicate = None
    if request.method == "POST" and form.is_valid():
        try:
            example = services.example_create(
                dataset=dataset, user=request.user, status=form.status, **form.fields_for_service()
            )
        except DuplicateExample as error:
            duplicate = error.existing
        except ValidationError as error:
            for field, errors in error.message_dict.items():
                form.add_error(field if field in form.fields else None, errors)
        else:
            saved = f"saved=new-{dataset.pk}"
            if form.cleaned_data["intent"] == "another":
                messages.success(request, f"Added #{example.pk}. Here is a fresh form for the next one.")
                return redirect(f"{reverse('example-new', args=[dataset.pk])}?{saved}")
            messages.success(request, f"Added #{example.pk} as {example.get_status_display().lower()}.")
            return redirect(f"{reverse('example', args=[example.pk])}?{saved}")
    values = _values(form.data if form.is_bound else None)
    context = {
        "dataset": dataset,
        "form": form,
        "duplicate": duplicate,
        "roles": HISTORY_ROLES,
        "values": values,
        "preview": render_markdown(values["response"]),
        "guidelines": render_markdown(dataset.guidelines) if dataset.guidelines else "",
        **(sides_context(values["response"], values["rejected"]) if dataset.is_preference else {}),
    }
    return render(request, "datasets_app/new_example.html", context, status=400 if form.is_bound else 200)


def _values(data: QueryDict | None) -> dict[str, Any]:
    """What the form shows: empty, or exactly what was posted (so a refused form loses nothing)."""
    data = data if data is not None else QueryDict()
    return {
        "system_prompt": data.get("system_prompt", ""),
        "prompt": data.get("prompt", ""),
        "response": data.get("response", ""),
        "rejected": data.get("rejected", ""),
        "history": posted_turns(data),
        "tags": data.get("tags", ""),
    }


@csrf_exempt  # the CSRF check reads the whole body: it runs in _import_page, after the size check
@login_required
@require_http_methods(["GET", "POST"])
def dataset_import_page(request: HttpRequest, pk: int) -> HttpResponse:
    """Upload a file: small ones are imported at once (result or problems), large ones by a worker (a job page).

    An upload over IMPORT_MAX_BYTES is refused by its declared size before its body is read (413), one
    without a size (chunked) likewise (411), and a file is never spooled past the limit (imports/uploads.py).
    """
    dataset = selectors.dataset_get(user=request.user, pk=pk)
    if request.method == "POST":
        refused = upload_refusal(request)
        if refused is not None:
            return _refused(request, dataset, *refused)
        bound_uploads(request)
    return _import_page(request, dataset)


@csrf_protect
@role_errors_are_403
def _import_page(request: HttpRequest, dataset: Dataset) -> HttpResponse:
    is_lead = selectors.can_review(user=request.user, workspace=dataset.workspace)
    form = ImportForm(request.POST or None, request.FILES or None, preference=dataset.is_preference)
    context = {"dataset": dataset, "form": form, "is_lead": is_lead, **_limits()}
    if request.method != "POST":
        return render(request, "datasets_app/import.html", context)
    if upload_was_cut(request):
        return _refused(request, dataset, 413, too_large_message())
    if not form.is_valid():
        return render(request, "datasets_app/import.html", context, status=400)
    data = form.cleaned_data
    upload = data["file"]
    if upload.size > settings.IMPORT_MAX_BYTES:
        return _refused(request, dataset, 413, too_large_message())
    try:
        outcome = import_upload(
            dataset=dataset, user=request.user, upload=upload, fmt=data["format"] or None,
            on_duplicate=data["on_duplicate"], status=data["status"], split=data["split"],
        )  # fmt: skip
    except ImportRejected as rejected:
        context.update(problems=rejected.problems, more=rejected.more, filename=upload.name)
        return render(request, "datasets_app/import.html", context, status=400)
    if isinstance(outcome, Job):
        return redirect("job", pk=outcome.pk)
    context.update(outcome=outcome, filename=upload.name, form=ImportForm(preference=dataset.is_preference))
    return render(request, "datasets_app/import.html", context)


def _refused(request: HttpRequest, dataset: Dataset, status: int, message: str) -> HttpResponse:
    """The import page with why the upload was refused, and nothing of it read or kept."""
    context = {
        "dataset": dataset,
        "form": ImportForm(preference=dataset.is_preference),
        "is_lead": selectors.can_review(user=request.user, workspace=dataset.workspace),
        "refused": message[0].upper() + message[1:] + ".",
        **_limits(),
    }
    return render(request, "datasets_app/import.html", context, status=status)


def _limits() -> dict[str, float]:
    return {"max_mb": settings.IMPORT_MAX_BYTES / 2**20, "async_mb": settings.IMPORT_ASYNC_BYTES / 2**20}


@login_required
@require_GET
def job_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """A background job's progress (import, generation, drafting, a dataset check); htmx polls the fragment until it has finished."""
    job = selectors.job_get(user=request.user, pk=pk)
    context = {"job": job, "dataset": job.dataset, "title": _job_title(job)}
    if is_htmx(request):
        return render(request, "datasets_app/partials/job_status.html", context)
    return render(request, "datasets_app/job.html", context)


def _job_title(job: Job) -> str:
    """What the job does, in words: the file it imports, the template it generates from, the model that drafts."""
    if job.kind == Job.Kind.IMPORT:
        return f"Importing {job.params.get('filename', 'a file')}"
    if job.kind == Job.Kind.LINT:
        return f"Checking every pair of {job.dataset.name}"
    if job.kind == Job.Kind.EXPORT:
        return f"Merging run {job.params.get('run')}'s adapter into the base weights, for download"
    model = dict(generator_choices(workspace=job.dataset.workspace)).get(job.params.get("generator") or "", "")
    if job.kind == Job.Kind.FAILURES:
        count = len(job.params.get("items", []))
        run = job.params.get("run")
        title = f"Rewording {count} prompt{'' if count == 1 else 's'} that run {run} failed, as drafts for annotators"
        return title + (f" (by {model})" if model else "")
    if job.kind == Job.Kind.DRAFT:
        count = len(job.params.get("examples", []))
        return f"Drafting {count} response{'' if count == 1 else 's'}" + (f" with {model}" if model else "")
    template = Template.objects.filter(pk=job.params.get("template")).values_list("name", flat=True).first()
    title = f"Generating pairs from {template}" if template else "Generating pairs from a template"
    return title + (f" (responses drafted by {model})" if model else "")
