"""The example editor: load, save (and save & next, submit, approve, reject), conflicts, preview, token counts."""

import math
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse, JsonResponse, QueryDict
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST

from datasets_app.curation import queues, selectors
from datasets_app.curation.limits import pair_text_max, pair_total_max, too_long
from datasets_app.curation.origins import example_origins
from datasets_app.errors import StaleVersion
from datasets_app.models import HISTORY_ROLES, Dataset, Example
from datasets_app.views.common import ListFilters, role_errors_are_403
from datasets_app.views.forms import EditorForm, parse_tags, posted_turns
from datasets_app.views.markdown import render_markdown
from datasets_app.views.textdiff import as_text, sides_context, word_diff

TEXT_FIELDS = ("system_prompt", "prompt", "response", "rejected", "history", "tags")
FIELD_LABELS = {
    "system_prompt": "System prompt",
    "history": "Earlier turns",
    "prompt": "Prompt",
    "response": "Response",
    "rejected": "Rejected answer",
    "tags": "Tags",
    "status": "Status",
    "review_comment": "Review comment",
    "split": "Set",
}
DONE = {"submit": "Submitted", "approve": "Approved", "reject": "Rejected", "reopen": "Reopened"}


def field_labels(dataset: Dataset) -> dict[str, str]:
    """What the pages call each field; in a preference dataset the response is the chosen answer."""
    return {**FIELD_LABELS, "response": "Chosen answer"} if dataset.is_preference else FIELD_LABELS


def _fields_of(example: Example) -> dict[str, Any]:
    return {name: getattr(example, name) for name in TEXT_FIELDS}


def _editor_context(
    request: HttpRequest, example: Example, *, values: dict[str, Any], form: EditorForm | None = None
) -> dict[str, Any]:
    dataset = example.dataset
    filters = ListFilters.from_query(request.GET if request.method == "GET" else _list_query(request))
    queue = request.GET.get("queue") or request.POST.get("queue") or ""
    examples = selectors.example_filter_by_id(dataset=dataset, **filters.selector_kwargs())
    previous, following = selectors.example_neighbours(examples=examples, example=example)
    lease = selectors.example_lease_active(example=example)
    sides = sides_context(values["response"], values["rejected"]) if dataset.is_preference else {}
    return {
        **sides,
        "example": example,
        "dataset": dataset,
        "values": values,
        "tags_text": ", ".join(values["tags"]),
        "roles": HISTORY_ROLES,
        "form": form,
        "is_lead": selectors.can_review(user=request.user, workspace=dataset.workspace),
        "lease": lease,
        "holder": lease.user if lease is not None and lease.user_id != request.user.pk else None,
        "guidelines": render_markdown(dataset.guidelines) if dataset.guidelines else "",
        "preview": render_markdown(values["response"]),
        "queue": queue if queue in queues.QUEUE_STATUSES else "",
        "list_query": filters.query(),
        "previous_id": previous,
        "next_id": following,
        "problems": _problems_of(example),
        "origins": example_origins(example=example),
    }


def _problems_of(example: Example) -> list[dict[str, Any]]:
    """The lint's stored findings, with the pair each one relates to (a duplicate) when there is one."""
    return [
        {**problem, "related_id": problem.get("related") if isinstance(problem.get("related"), int) else None}
        for problem in example.problems
        if isinstance(problem, dict)
    ]


def _list_query(request: HttpRequest) -> QueryDict:
    """The list filters a POSTed editor form carried along (as the query string of the list it came from)."""
    return QueryDict(request.POST.get("list", "")[:2000])


@login_required
@require_http_methods(["GET", "POST"])
@role_errors_are_403
def example_detail(request: HttpRequest, pk: int) -> HttpResponse:
    example = selectors.example_get(user=request.user, pk=pk)
    if request.method == "POST":
        return _save(request, example)
    context = _editor_context(request, example, values=_fields_of(example))
    return render(request, "datasets_app/editor.html", context)


def _save(request: HttpRequest, example: Example) -> HttpResponse:
    form = EditorForm(request.POST)
    if not form.is_valid():
        return _invalid(request, example, form)
    data = form.cleaned_data
    fields = form.fields_for_service()
    if data["intent"] == "swap":
        if not example.dataset.is_preference:
            form.add_error(None, "Only the pairs of a preference dataset have a chosen and a rejected answer to swap.")
            return _invalid(request, example, form)
        fields["response"], fields["rejected"] = fields["rejected"], fields["response"]
    try:
        saved = queues.example_save(
            example=example,
            user=request.user,
            expected_version=data["version"],
            fields=fields,
            action=form.action,
            comment=data["comment"],
            release=data["intent"] == "save_next",
        )
    except StaleVersion as stale:
        return _conflict(request, stale.current, form, mine=fields)
    except ValidationError as error:
        # e.g. an approval the dataset refuses because the pair fails its template's validator
        found = error.message_dict if hasattr(error, "error_dict") else {None: error.messages}
        for field, messages_ in found.items():
            form.add_error(field if field in form.fields else None, messages_)
        return _invalid(request, example, form)
    if data["intent"] in ("save", "swap"):
        queues.example_lease_renew(example=saved, user=request.user)
        done = "Swapped the chosen and the rejected answer" if data["intent"] == "swap" else "Saved"
        messages.success(request, f"{done} (version {saved.version}).")
        return redirect(_editor_url(saved.pk, request, saved=saved.pk))
    if form.action and not data["queue"] and data["intent"] != "save_next":
        messages.success(request, f"{DONE[form.action]}.")
        return redirect(_editor_url(saved.pk, request, saved=saved.pk))
    return _go_next(request, saved, queue=data["queue"], done=DONE.get(form.action or "", "Saved"))


def _go_next(request: HttpRequest, saved: Example, *, queue: str, done: str) -> HttpResponse:
    """After save & next (or a status change in a queue): the queue's next pair, or the list's next one."""
    dataset = saved.dataset
    if queue:
        following = queues.example_lease_next(dataset=dataset, user=request.user, queue=queue, after_id=saved.pk)
        if following is None:
            messages.success(request, f"{done}. That was the last one in this queue for now.")
            return redirect(f"{reverse('dataset', args=[dataset.pk])}?saved={saved.pk}")
        messages.success(request, f"{done} #{saved.pk}.")
        return redirect(f"{reverse('example', args=[following.pk])}?queue={queue}&saved={saved.pk}")
    filters = ListFilters.from_query(_list_query(request))
    examples = selectors.example_filter_by_id(dataset=dataset, **filters.selector_kwargs())
    following_id = examples.filter(id__gt=saved.pk).order_by("id").values_list("id", flat=True).first()
    if following_id is None:
        messages.success(request, f"{done}. That was the last pair in this list.")
        return redirect(f"{reverse('dataset', args=[dataset.pk])}?{filters.query(saved=saved.pk)}")
    messages.success(request, f"{done} #{saved.pk}.")
    return redirect(_editor_url(following_id, request, saved=saved.pk))


def _editor_url(pk: int, request: HttpRequest, **extra: object) -> str:
    filters = ListFilters.from_query(_list_query(request))
    queue = request.POST.get("queue", "")
    query = filters.query(queue=queue if queue in queues.QUEUE_STATUSES else "", **extra)
    return f"{reverse('example', args=[pk])}?{query}" if query else reverse("example", args=[pk])


def _posted_values(form: EditorForm) -> dict[str, Any]:
    """What the user typed, even when the form did not validate, so nothing they wrote disappears."""
    data = form.data
    return {
        "system_prompt": data.get("system_prompt", ""),
        "prompt": data.get("prompt", ""),
        "response": data.get("response", ""),
        "rejected": data.get("rejected", ""),
        "history": posted_turns(data),
        "tags": parse_tags(data.get("tags", "")),
    }


def _invalid(request: HttpRequest, example: Example, form: EditorForm) -> HttpResponse:
    values = _posted_values(form)
    context = _editor_context(request, example, values=values, form=form)
    context["posted_version"] = form.data.get("version", example.version)
    context["comment"] = form.data.get("comment", "")
    return render(request, "datasets_app/editor.html", context, status=400)


def _conflict(request: HttpRequest, current: Example, form: EditorForm, *, mine: dict[str, Any]) -> HttpResponse:
    """Someone saved in between: show both versions side by side and let the user choose; nothing was written.

    `mine` is what the save would have stored (a swap's answers already exchanged, so keeping it is a plain save)."""
    theirs = _fields_of(current)
    rows = []
    labels = field_labels(current.dataset)
    for name in TEXT_FIELDS:
        old, new = as_text(name, theirs[name]), as_text(name, mine[name])
        rows.append(
            {
                "name": name,
                "label": labels[name],
                "theirs": old,
                "mine": new,
                "differs": old != new,
                "diff": word_diff(old, new) if old != new else [],
            }
        )
    context = {
        "example": current,
        "dataset": current.dataset,
        "rows": rows,
        "mine": mine,
        "mine_tags": ", ".join(mine["tags"]),
        "roles": HISTORY_ROLES,
        "loaded_version": form.cleaned_data["version"],
        "intent": "save" if form.cleaned_data["intent"] == "swap" else form.cleaned_data["intent"],
        "comment": form.cleaned_data["comment"],
        "queue": form.cleaned_data["queue"],
        "list_query": request.POST.get("list", "")[:2000],
        "latest": selectors.revision_list(example=current).last(),
        "text_same": not any(row["differs"] for row in rows),
        **(sides_context(mine["response"], mine["rejected"]) if current.dataset.is_preference else {}),
    }
    return render(request, "datasets_app/conflict.html", context, status=409)


@login_required
@require_POST
def markdown_preview(request: HttpRequest, pk: int) -> HttpResponse:
    """The response as sanitized HTML, for the editor's preview (an htmx fragment)."""
    selectors.dataset_get(user=request.user, pk=pk)
    response = request.POST.get("response", "")
    if len(response) > pair_text_max():  # it cannot be saved either; rendering it would only cost time
        return render(
            request, "datasets_app/partials/markdown.html", {"too_long": too_long(len(response), pair_text_max())}
        )
    return render(request, "datasets_app/partials/markdown.html", {"html": render_markdown(response)})


@login_required
@require_POST
def sides_diff(request: HttpRequest, pk: int) -> HttpResponse:
    """The word diff between a preference pair's two answers as typed, for the editor (an htmx fragment)."""
    selectors.dataset_get(user=request.user, pk=pk)
    context = sides_context(request.POST.get("response", ""), request.POST.get("rejected", ""))
    return render(request, "datasets_app/partials/sides_diff.html", context)


@login_required
@require_POST
def token_counts(request: HttpRequest, pk: int) -> JsonResponse:
    """Tokens per field with the workspace's base model tokenizer; an estimate (chars / 4) until it is cached."""
    from datasets_app.lint.tokens import count_tokens  # tokenizers only: no torch in the web process

    dataset = selectors.dataset_get(user=request.user, pk=pk)
    names = [name for name in ("system_prompt", "history", "prompt", "response", "rejected") if name in request.POST]
    texts = [request.POST.get(name, "") for name in names]
    model = dataset.workspace.default_base_model or None
    # Text over the caps cannot be saved; it gets the estimate instead of a tokenizer's time.
    fits = sum(map(len, texts)) <= pair_total_max() and all(
        len(text) <= pair_text_max() for name, text in zip(names, texts, strict=True) if name != "history"
    )
    counts = count_tokens(texts, model_name=model) if fits else None
    exact = counts is not None
    if counts is None:
        counts = [math.ceil(len(text) / 4) for text in texts]
    return JsonResponse({"exact": exact, "counts": dict(zip(names, counts, strict=True)), "total": sum(counts)})


@login_required
@require_POST
def lease_renew(request: HttpRequest, pk: int) -> JsonResponse:
    """The editor's keep-alive while the user works on a pair the queue gave them."""
    example = selectors.example_get(user=request.user, pk=pk)
    return JsonResponse({"held": queues.example_lease_renew(example=example, user=request.user)})
