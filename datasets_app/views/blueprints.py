"""Template pages: the list, a new template, the edit form per kind, preview, generate, and model drafting."""

import re
from typing import Any
from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.db.models import Count
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST

from datasets_app.blueprints import services as blueprints
from datasets_app.blueprints.specs import SpecError, default_spec, parse_spec
from datasets_app.curation import selectors
from datasets_app.errors import StaleVersion
from datasets_app.models import Job, Role, Template, Workspace
from datasets_app.views.blueprint_forms import (
    GENERAL,
    DraftForm,
    FieldErrors,
    GenerateForm,
    TemplateMetaForm,
    TemplateNewForm,
    empty_topic,
    field_errors,
    spec_fields,
    spec_from_post,
)
from datasets_app.views.common import is_htmx, parse_id, role_errors_are_403, safe_next

PREVIEW_ROWS = 200
_OP = re.compile(r"^(add|remove)-(blocked|allowed)(?:-(\d{1,3}))?$")


def _workspace_get(request: HttpRequest, pk: int) -> Workspace:
    return get_object_or_404(selectors.workspace_list(user=request.user), pk=pk)


@login_required
@require_http_methods(["GET"])
def template_list(request: HttpRequest, pk: int | None = None) -> HttpResponse:
    """Templates per workspace (all of the user's, or one); leads get "New template"."""
    workspaces = [_workspace_get(request, pk)] if pk is not None else list(selectors.workspace_list(user=request.user))
    templates = selectors.template_list(user=request.user).annotate(n_datasets=Count("datasets"))
    groups = [
        {
            "workspace": workspace,
            "is_lead": selectors.can_review(user=request.user, workspace=workspace),
            "templates": [template for template in templates if template.workspace_id == workspace.pk],
        }
        for workspace in workspaces
    ]
    return render(request, "datasets_app/templates.html", {"groups": groups, "one": pk is not None})


@login_required
@require_http_methods(["GET", "POST"])
@role_errors_are_403
def template_new(request: HttpRequest, pk: int) -> HttpResponse:
    """Name and kind; the template starts from the kind's default spec and opens in the edit form."""
    workspace = _workspace_get(request, pk)
    selectors.role_require(user=request.user, workspace=workspace, role=Role.LEAD)
    form = TemplateNewForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            template = blueprints.template_create(
                workspace=workspace,
                user=request.user,
                name=data["name"],
                kind=data["kind"],
                description=data["description"],
                spec=default_spec(data["kind"]),
            )
        except ValidationError as error:
            _add_errors(form, error)
        else:
            messages.success(request, f"Created {template.name}: it starts from an example; make it yours below.")
            return redirect("template", pk=template.pk)
    status = 400 if form.is_bound else 200
    return render(request, "datasets_app/template_new.html", {"workspace": workspace, "form": form}, status=status)


def _add_errors(form: Any, error: ValidationError) -> None:
    if not hasattr(error, "error_dict"):
        form.add_error(None, error.messages)
        return
    for name, errors in error.message_dict.items():
        form.add_error(name if name in form.fields else None, errors)


@login_required
@require_http_methods(["GET", "POST"])
@role_errors_are_403
def template_edit(request: HttpRequest, pk: int) -> HttpResponse:
    """The template as a form of its kind; everyone in the workspace may look, leads may change it."""
    template = selectors.template_get(user=request.user, pk=pk)
    if request.method == "POST":
        selectors.role_require(user=request.user, workspace=template.workspace, role=Role.LEAD)
        return _edit_post(request, template)
    meta = {"name": template.name, "description": template.description, "version": template.version}
    return _edit_page(request, template, spec=template.spec, meta=meta, errors=FieldErrors())


def _edit_post(request: HttpRequest, template: Template) -> HttpResponse:
    """Save, or add/remove a topic: those only show the form again with what was typed, nothing is written."""
    op = request.POST.get("op") or "save"
    posted = spec_from_post(template.kind, request.POST, drop_blank_topics=op == "save")
    meta = {name: request.POST.get(name, "") for name in ("name", "description", "version")}
    if op != "save":
        _apply_op(posted.spec, op)
        return _edit_page(request, template, spec=posted.spec, meta=meta, errors=FieldErrors(), changed=True)
    form = TemplateMetaForm(request.POST)
    if not form.is_valid() or posted.errors:
        errors = field_errors([], {**posted.errors, **form.errors})
        return _edit_page(request, template, spec=posted.spec, meta=meta, errors=errors, status=400)
    data = form.cleaned_data
    try:
        saved = blueprints.template_update(
            template=template,
            user=request.user,
            expected_version=data["version"],
            name=data["name"],
            description=data["description"],
            spec=posted.spec,
        )
    except StaleVersion as stale:
        return _stale(request, stale.current, spec=posted.spec, meta=meta)
    except ValidationError as error:
        errors = _service_errors(error)
        return _edit_page(request, template, spec=posted.spec, meta=meta, errors=errors, status=400)
    messages.success(request, f"Saved {saved.name} (version {saved.version}).")
    return redirect("template", pk=saved.pk)


def _apply_op(spec: dict[str, Any], op: str) -> None:
    match = _OP.match(op)
    if match is None or match[2] not in spec:
        return
    action, name, index = match.groups()
    if action == "add":
        spec[name].append(empty_topic(name))
    elif index is not None and int(index) < len(spec[name]):
        del spec[name][int(index)]


def _service_errors(error: ValidationError) -> FieldErrors:
    if not hasattr(error, "error_dict"):
        return field_errors([], {GENERAL: error.messages})
    found = error.message_dict
    other = {name: messages_ for name, messages_ in found.items() if name != "spec"}
    return field_errors(found.get("spec", []), other)


def _stale(request: HttpRequest, current: Template, *, spec: dict[str, Any], meta: dict[str, Any]) -> HttpResponse:
    """Someone saved in between: nothing was written; keep what the user typed and let them save it over on purpose."""
    by = current.updated_by.get_username() if current.updated_by else "someone"
    warning = (
        f"Not saved: {by} saved version {current.version} after you loaded version {meta['version']}. "
        "Your edits are kept below. Open the template in another tab to see their version; "
        "saving this form again replaces it with yours."
    )
    meta = {**meta, "version": current.version}
    return _edit_page(request, current, spec=spec, meta=meta, errors=FieldErrors(), status=409, warning=warning)


def _edit_page(
    request: HttpRequest,
    template: Template,
    *,
    spec: dict[str, Any],
    meta: dict[str, Any],
    errors: FieldErrors,
    status: int = 200,
    warning: str = "",
    changed: bool = False,
) -> HttpResponse:
    workspace = template.workspace
    datasets = selectors.dataset_list(user=request.user, workspace=workspace)
    chosen = parse_id(request.GET.get("dataset"))
    generate = GenerateForm(
        datasets=datasets,
        template=template,
        initial={"dataset": chosen if chosen and datasets.filter(pk=chosen).exists() else _likely_dataset(template)},
    )
    context = {
        "template": template,
        "workspace": workspace,
        "values": spec_fields(template.kind, spec, errors),
        "meta": meta,
        "problems": errors.summary,
        "warning": warning,
        "changed": changed,
        "can_edit": selectors.can_review(user=request.user, workspace=workspace),
        "generate": generate,
        "has_datasets": datasets.exists(),
    }
    return render(request, "datasets_app/template_edit.html", context, status=status)


@login_required
@require_POST
def template_preview(request: HttpRequest, pk: int) -> HttpResponse:
    """What generating would create in the chosen dataset, marking what it already has; writes nothing.

    From the edit form's "Preview edits" (spec_form), it previews the form's unsaved spec instead of the saved one.
    """
    template = selectors.template_get(user=request.user, pk=pk)
    datasets = selectors.dataset_list(user=request.user, workspace=template.workspace)
    form = GenerateForm(request.POST, datasets=datasets, template=template)
    context: dict[str, Any] = {"template": template, "form": form}
    status = 200
    if form.is_valid():
        shown, context["unsaved"], problems = _previewed(request, template)
        context.update({"spec_problems": problems} if problems else _plan_context(shown, form))
    else:
        status = 400
    page = "datasets_app/partials/template_preview.html" if is_htmx(request) else "datasets_app/template_preview.html"
    return render(request, page, context, status=status)


def _previewed(request: HttpRequest, template: Template) -> tuple[Template, bool, list[str]]:
    """The template to preview, whether it holds unsaved edits, and the problems of the edits' numbers."""
    if "spec_form" not in request.POST:
        return template, False, []
    posted = spec_from_post(template.kind, request.POST, drop_blank_topics=True)
    problems = [f"{name}: {message}" for name, messages_ in posted.errors.items() for message in messages_]
    if _same_spec(template.kind, posted.spec, template.spec):
        return template, False, problems
    draft = Template(workspace=template.workspace, kind=template.kind, name=template.name, spec=posted.spec)
    return draft, True, problems


def _same_spec(kind: str, posted: dict[str, Any], saved: dict[str, Any]) -> bool:
    try:
        return parse_spec(kind, posted) == parse_spec(kind, saved)
    except SpecError:
        return posted == saved


def _plan_context(template: Template, form: GenerateForm) -> dict[str, Any]:
    data = form.cleaned_data
    generator = data["generator"] or None
    try:
        plan = blueprints.template_plan(
            template=template, dataset=data["dataset"], paraphrases=data.get("paraphrases") if generator else 0
        )
    except SpecError as error:
        return {"spec_problems": error.problems}
    return {
        "dataset": data["dataset"],
        "rows": plan.pairs[:PREVIEW_ROWS],
        "more": max(len(plan.pairs) - PREVIEW_ROWS, 0),
        "new": len(plan.new),
        "existing": len(plan.pairs) - len(plan.new),
        "paraphrases": plan.paraphrases,
        "generator_label": form.generator_label(),
    }


@login_required
@require_POST
@role_errors_are_403
def template_generate(request: HttpRequest, pk: int) -> HttpResponse:
    """Generate into a dataset (leads): done now, or a job page when a model drafts or the pairs are many."""
    return _generate(request, pk, preference=False)


@login_required
@require_POST
@role_errors_are_403
def template_generate_preferences(request: HttpRequest, pk: int) -> HttpResponse:
    """A guardrail template's preference pairs into a preference dataset (leads), as Generate does."""
    return _generate(request, pk, preference=True)


def _generate(request: HttpRequest, pk: int, *, preference: bool) -> HttpResponse:
    template = selectors.template_get(user=request.user, pk=pk)
    selectors.role_require(user=request.user, workspace=template.workspace, role=Role.LEAD)
    datasets = selectors.dataset_list(user=request.user, workspace=template.workspace)
    form = GenerateForm(request.POST, datasets=datasets, template=template)
    back = reverse("template", args=[template.pk])
    if not form.is_valid():
        _flash_errors(request, [f"{name}: {error}" for name, errors in form.errors.items() for error in errors])
        return redirect(back)
    data = form.cleaned_data
    dataset = data["dataset"]
    try:
        outcome = blueprints.template_generate(
            template=template,
            dataset=dataset,
            user=request.user,
            generator=data["generator"] or None,
            paraphrases=data.get("paraphrases"),
            preference=preference,
        )
    except ValidationError as error:
        _flash_errors(request, error.messages)
        return redirect(f"{back}?dataset={dataset.pk}")
    if isinstance(outcome, Job):
        return redirect("job", pk=outcome.pk)
    what = "preference pair" if preference else "pair"
    messages.success(
        request,
        f"Generated {outcome.created} new {what}{'' if outcome.created == 1 else 's'} from {template.name}; "
        f"skipped {outcome.skipped} the dataset already had. Below: the pairs this template made.",
    )
    query = urlencode({"source": f"template:{template.name}"[:200]})
    return redirect(f"{reverse('dataset', args=[dataset.pk])}?{query}")


def _flash_errors(request: HttpRequest, found: list[str]) -> None:
    for message in found:
        messages.error(request, message)


@login_required
@require_POST
@role_errors_are_403
def template_delete(request: HttpRequest, pk: int) -> HttpResponse:
    template = selectors.template_get(user=request.user, pk=pk)
    workspace = template.workspace
    blueprints.template_delete(template=template, user=request.user)
    messages.success(request, f"Deleted the template {template.name}; the pairs it generated stay.")
    return redirect("workspace-templates", pk=workspace.pk)


@login_required
@require_POST
@role_errors_are_403
def dataset_draft(request: HttpRequest, pk: int) -> HttpResponse:
    """The dataset page's bulk "draft responses with a model" (leads): a job on a worker, then its page."""
    dataset = selectors.dataset_get(user=request.user, pk=pk)
    selectors.role_require(user=request.user, workspace=dataset.workspace, role=Role.LEAD)
    back = safe_next(request, reverse("dataset", args=[dataset.pk]))
    form = DraftForm(request.POST, workspace=dataset.workspace)
    if not form.is_valid():
        _flash_errors(request, [error for errors in form.errors.values() for error in errors])
        return redirect(back)
    try:
        job = blueprints.draft_responses_start(
            dataset=dataset,
            user=request.user,
            example_ids=form.cleaned_data["example_ids"],
            generator=form.cleaned_data["generator"] or None,
        )
    except ValidationError as error:
        _flash_errors(request, error.messages)
        return redirect(back)
    return redirect("job", pk=job.pk)


def _likely_dataset(template: Template) -> object:
    """The dataset this template already checks, else one of its kind, else any of the workspace."""
    datasets = template.workspace.datasets.order_by("name")
    return datasets.filter(template=template).first() or datasets.filter(kind=template.kind).first() or datasets.first()
