"""The workspace's API keys page (admins only): make a key (its secret shown once, on the answer to the form),
see who made each and when it was last used, revoke one. A member who is not an admin gets 403, anyone else 404."""

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST

from datasets_app.curation import selectors
from datasets_app.models import Role, Workspace
from datasets_app.views.common import role_errors_are_403
from openai_app import keys
from openai_app.models import KeyRole


class ApiKeyForm(forms.Form):
    name = forms.CharField(max_length=200)
    role = forms.ChoiceField(choices=KeyRole.choices, initial=KeyRole.ANNOTATOR)


def _admin_workspace(request: HttpRequest, pk: int) -> Workspace:
    workspace = get_object_or_404(selectors.workspace_list(user=request.user), pk=pk)
    selectors.role_require(user=request.user, workspace=workspace, role=Role.ADMIN)
    return workspace


def _page(
    request: HttpRequest, workspace: Workspace, *, form: ApiKeyForm | None = None, secret: str = "", status: int = 200
) -> HttpResponse:
    context = {
        "workspace": workspace,
        "keys": keys.api_key_list(workspace=workspace, by=request.user),
        "form": form or ApiKeyForm(),
        "secret": secret,
        "base_url": request.build_absolute_uri("/v1"),
    }
    response = render(request, "openai_app/api_keys.html", context, status=status)
    response["Cache-Control"] = "no-store"  # the page may hold a secret
    return response


@login_required
@require_GET
@role_errors_are_403
def api_keys(request: HttpRequest, pk: int) -> HttpResponse:
    return _page(request, _admin_workspace(request, pk))


@login_required
@require_POST
@role_errors_are_403
def api_key_create(request: HttpRequest, pk: int) -> HttpResponse:
    """Make a key and show its secret in this answer only (not a redirect: the secret is never kept anywhere)."""
    workspace = _admin_workspace(request, pk)
    form = ApiKeyForm(request.POST)
    if form.is_valid():
        try:
            key, secret = keys.api_key_create(workspace=workspace, by=request.user, **form.cleaned_data)
        except ValidationError as error:
            for field, errors in error.message_dict.items():
                form.add_error(field if field in form.fields else None, errors)
        else:
            messages.success(request, f"Made the key {key.name}. Copy it now: it is not shown again.")
            return _page(request, workspace, secret=secret)
    return _page(request, workspace, form=form, status=400)


@login_required
@require_POST
@role_errors_are_403
def api_key_revoke(request: HttpRequest, pk: int, key: int) -> HttpResponse:
    workspace = _admin_workspace(request, pk)
    found = keys.api_key_get(workspace=workspace, by=request.user, pk=key)
    keys.api_key_revoke(key=found, by=request.user)
    messages.success(request, f"Revoked the key {found.name}; it no longer works.")
    return redirect("workspace-api-keys", pk=workspace.pk)
