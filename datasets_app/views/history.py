"""An example's history: every version with a word-level diff against the one before, and restoring one."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from datasets_app.curation import selectors, services
from datasets_app.errors import StaleVersion
from datasets_app.models import ExampleRevision, ExampleSplit
from datasets_app.views.common import parse_id, role_errors_are_403
from datasets_app.views.editor import field_labels
from datasets_app.views.textdiff import as_text, word_diff

FIELD_ORDER = (
    "system_prompt", "history", "prompt", "response", "rejected", "tags", "status", "split", "review_comment",
)  # fmt: skip
SHORT_FIELDS = ("status", "tags", "split")


@login_required
@require_GET
def example_history(request: HttpRequest, pk: int) -> HttpResponse:
    example = selectors.example_get(user=request.user, pk=pk)
    entries = []
    labels = field_labels(example.dataset)
    for entry in selectors.example_history(example=example):
        changes = []
        for name in sorted(entry.changes, key=lambda name: FIELD_ORDER.index(name) if name in FIELD_ORDER else 99):
            before, after = (_readable(name, value) for value in entry.changes[name])
            created = entry.revision is not None and entry.revision.action == ExampleRevision.Action.CREATE
            if created and not after:
                continue  # an empty field at creation is not news
            changes.append(
                {
                    "label": labels.get(name, name),
                    "short": name in SHORT_FIELDS,
                    "before": before,
                    "after": after,
                    "diff": [] if created else word_diff(before, after),
                }
            )
        entries.append({"entry": entry, "changes": changes, "current": entry.version == example.version})
    return render(
        request, "datasets_app/history.html", {"example": example, "dataset": example.dataset, "entries": entries}
    )


def _readable(name: str, value: object) -> str:
    if name == "split":
        return dict(ExampleSplit.choices).get(str(value), "") if value else ""
    return as_text(name, value)


@login_required
@require_POST
@role_errors_are_403
def example_restore(request: HttpRequest, pk: int) -> HttpResponse:
    """Bring back the text of an earlier version; the restore is itself a new version."""
    example = selectors.example_get(user=request.user, pk=pk)
    version, expected = parse_id(request.POST.get("version")), parse_id(request.POST.get("expected_version"))
    if version is None or expected is None:
        raise Http404("no such version")
    revision = example.revisions.filter(version=version).order_by("-id").first()
    if revision is None and version == 1:
        # A pair from a bulk import has no 'create' revision: version 1 is whatever every later change undoes.
        revision = ExampleRevision(example=example, version=1)
    if revision is None:
        raise Http404("no such version")
    history_url = reverse("example-history", args=[example.pk])
    try:
        restored = services.example_restore(revision=revision, user=request.user, expected_version=expected)
    except StaleVersion:
        messages.error(request, "Someone changed this pair while you were reading its history; look again.")
        return redirect(history_url)
    messages.success(request, f"Restored version {version} as version {restored.version}.")
    return redirect(f"{reverse('example', args=[example.pk])}?saved={example.pk}")
