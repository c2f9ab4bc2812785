"""A workspace's members and invitations: admins invite, revoke and change roles; the invited accept or decline.

Roles are checked by the services (a non-admin's hand-made POST gets 403); a missing workspace or invitation and
someone else's look the same (404).
"""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST

from datasets_app.curation import invitations, selectors, services
from datasets_app.errors import NotAMember
from datasets_app.models import Role, Workspace
from datasets_app.views.common import role_errors_are_403
from datasets_app.views.forms import InviteForm, RoleForm


def _page(
    request: HttpRequest, workspace: Workspace, *, invite: InviteForm | None = None, status: int = 200
) -> HttpResponse:
    membership = selectors.membership_get(user=request.user, workspace=workspace)
    is_admin = membership is not None and membership.allows(Role.ADMIN)
    context = {
        "workspace": workspace,
        "members": selectors.member_list(workspace=workspace),
        "is_admin": is_admin,
        "roles": Role.choices,
        "invite": invite or InviteForm(),
        "pending": invitations.invitation_list_for_workspace(workspace=workspace, by=request.user) if is_admin else [],
    }
    return render(request, "datasets_app/members.html", context, status=status)


def _workspace(request: HttpRequest, pk: int) -> Workspace:
    return get_object_or_404(selectors.workspace_list(user=request.user), pk=pk)


@login_required
@require_GET
def workspace_members(request: HttpRequest, pk: int) -> HttpResponse:
    """Who is in the workspace, with which role; for admins also the invite form and pending invitations."""
    return _page(request, _workspace(request, pk))


@login_required
@require_POST
@role_errors_are_403
def workspace_invite(request: HttpRequest, pk: int) -> HttpResponse:
    workspace = _workspace(request, pk)
    selectors.role_require(user=request.user, workspace=workspace, role=Role.ADMIN)
    form = InviteForm(request.POST)
    if form.is_valid():
        try:
            invitation = invitations.invitation_create(workspace=workspace, by=request.user, **form.cleaned_data)
        except ValidationError as error:
            for field, errors in error.message_dict.items():
                form.add_error(field if field in form.fields else None, errors)
        else:
            messages.success(
                request,
                f"Invited {invitation.username} as {invitation.get_role_display().lower()}. "
                "They become a member once they accept.",
            )
            return redirect("workspace-members", pk=workspace.pk)
    return _page(request, workspace, invite=form, status=400)


@login_required
@require_POST
@role_errors_are_403
def workspace_role(request: HttpRequest, pk: int) -> HttpResponse:
    """Change a member's role; a name that is not a member's is a 404, whether or not anyone has it."""
    workspace = _workspace(request, pk)
    selectors.role_require(user=request.user, workspace=workspace, role=Role.ADMIN)
    form = RoleForm(request.POST)
    if not form.is_valid():
        for errors in form.errors.values():
            for error in errors:
                messages.error(request, error)
        return redirect("workspace-members", pk=workspace.pk)
    username = form.cleaned_data["username"]
    member = selectors.member_list(workspace=workspace).filter(user__username=username).first()
    try:
        if member is None:
            raise NotAMember(username)
        membership = services.membership_set(
            workspace=workspace, user=member.user, role=form.cleaned_data["role"], by=request.user
        )
    except NotAMember:
        raise Http404("no such member") from None
    except ValidationError as error:
        for message in error.messages:
            messages.error(request, message)
    else:
        messages.success(request, f"{username} is now {membership.get_role_display().lower()}.")
    return redirect("workspace-members", pk=workspace.pk)


@login_required
@require_POST
@role_errors_are_403
def invitation_revoke(request: HttpRequest, pk: int, invitation: int) -> HttpResponse:
    workspace = _workspace(request, pk)
    found = invitations.invitation_get_for_workspace(workspace=workspace, by=request.user, pk=invitation)
    invitations.invitation_revoke(invitation=found, by=request.user)
    messages.success(request, f"Withdrew the invitation to {found.username}.")
    return redirect("workspace-members", pk=workspace.pk)


@login_required
@require_POST
def invitation_accept(request: HttpRequest, pk: int) -> HttpResponse:
    invitation = invitations.invitation_get_for_user(user=request.user, pk=pk)
    membership = invitations.invitation_accept(invitation=invitation, user=request.user)
    messages.success(request, f"You joined {invitation.workspace.name} as {membership.get_role_display().lower()}.")
    return redirect("home")


@login_required
@require_POST
def invitation_decline(request: HttpRequest, pk: int) -> HttpResponse:
    invitation = invitations.invitation_get_for_user(user=request.user, pk=pk)
    invitations.invitation_decline(invitation=invitation, user=request.user)
    messages.info(request, f"Declined the invitation to {invitation.workspace.name}.")
    return redirect("home")
