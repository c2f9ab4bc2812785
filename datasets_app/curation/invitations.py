"""How people join a workspace: an admin invites a username with a role, and only that user's acceptance makes
them a member. Services (writes) and selectors (reads) of invitations, side by side.

An invitation is kept by username, so inviting a name nobody has is, to the admin, exactly like inviting
someone who exists: the same answer, the same pending list. Usernames cannot be found out this way, and no
one is put into a workspace (or shown its name) without saying yes.
"""

from datetime import timedelta

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import QuerySet
from django.http import Http404
from django.utils import timezone

from datasets_app.curation.limits import texts_require
from datasets_app.curation.selectors import role_require
from datasets_app.errors import Conflict
from datasets_app.models import Invitation, InvitationStatus, Membership, Role, Workspace

PENDING_MAX = 500  # pending invitations one workspace may have at a time

User = AbstractBaseUser | AnonymousUser


# --- reads


def invitation_list_for_user(*, user: User) -> QuerySet[Invitation]:
    """The user's own invitations that can still be accepted, newest first."""
    if not user.is_authenticated:
        return Invitation.objects.none()
    return (
        Invitation.objects.filter(
            username=user.get_username(), status=InvitationStatus.PENDING, expires_at__gt=timezone.now()
        )
        .select_related("workspace", "invited_by")
        .order_by("-created_at", "-id")
    )


def invitation_get_for_user(*, user: User, pk: int) -> Invitation:
    """One of the user's acceptable invitations; anything else (missing, someone else's, answered, lapsed): 404."""
    invitation = invitation_list_for_user(user=user).filter(pk=pk).first()
    if invitation is None:
        raise Http404("no such invitation")
    return invitation


def invitation_list_for_workspace(*, workspace: Workspace, by: User) -> QuerySet[Invitation]:
    """A workspace's pending invitations, for its admins only (NotAllowed for anyone else)."""
    role_require(user=by, workspace=workspace, role=Role.ADMIN)
    return (
        workspace.invitations.filter(status=InvitationStatus.PENDING, expires_at__gt=timezone.now())
        .select_related("invited_by")
        .order_by("username")
    )


def invitation_get_for_workspace(*, workspace: Workspace, by: User, pk: int) -> Invitation:
    invitation = invitation_list_for_workspace(workspace=workspace, by=by).filter(pk=pk).first()
    if invitation is None:
        raise Http404("no such invitation")
    return invitation


# --- writes


@transaction.atomic
def invitation_create(*, workspace: Workspace, by: AbstractBaseUser, username: str, role: str) -> Invitation:
    """Invite a username (workspace admins). Inviting again while one is pending renews it with the new role.

    Whether the name belongs to anyone is never looked up here: that is what keeps usernames private.
    """
    role_require(user=by, workspace=workspace, role=Role.ADMIN)
    username = username.strip()
    texts_require(username=username)
    if not username:
        raise ValidationError({"username": ["name the user to invite"]})
    if workspace.memberships.filter(user__username=username).exists():
        # The admin sees the member list anyway: this tells them nothing new.
        raise Conflict({"username": [f"{username} is already a member; change their role instead"]})
    expires_at = timezone.now() + timedelta(days=settings.INVITATION_TTL_DAYS)
    pending = workspace.invitations.select_for_update().filter(username=username, status=InvitationStatus.PENDING)
    invitation = pending.first()
    if invitation is not None:
        invitation.role, invitation.invited_by, invitation.expires_at = Role(role), by, expires_at
        invitation.save(update_fields=["role", "invited_by", "expires_at", "updated_at"])
        return invitation
    if workspace.invitations.filter(status=InvitationStatus.PENDING).count() >= PENDING_MAX:
        raise Conflict({"username": [f"at most {PENDING_MAX} invitations may be pending at once"]})
    try:
        with transaction.atomic():
            return Invitation.objects.create(
                workspace=workspace, username=username, role=Role(role), invited_by=by, expires_at=expires_at
            )
    except IntegrityError:  # another admin invited the same name just now
        return workspace.invitations.get(username=username, status=InvitationStatus.PENDING)


@transaction.atomic
def invitation_revoke(*, invitation: Invitation, by: AbstractBaseUser) -> Invitation:
    """Withdraw a pending invitation (workspace admins)."""
    role_require(user=by, workspace=invitation.workspace, role=Role.ADMIN)
    return _answer(invitation, InvitationStatus.REVOKED)


@transaction.atomic
def invitation_accept(*, invitation: Invitation, user: AbstractBaseUser) -> Membership:
    """The invited user says yes: they become a member with the offered role (a member already keeps theirs)."""
    invitation = _own(invitation, user)
    membership, _ = Membership.objects.get_or_create(
        workspace=invitation.workspace, user=user, defaults={"role": invitation.role}
    )
    _answer(invitation, InvitationStatus.ACCEPTED)
    return membership


@transaction.atomic
def invitation_decline(*, invitation: Invitation, user: AbstractBaseUser) -> Invitation:
    """The invited user says no; the admin may invite them again."""
    return _answer(_own(invitation, user), InvitationStatus.DECLINED)


def _own(invitation: Invitation, user: AbstractBaseUser) -> Invitation:
    """The invitation, locked, if it is this user's and can still be answered; 404 otherwise."""
    locked = Invitation.objects.select_for_update().filter(pk=invitation.pk).select_related("workspace").first()
    if (
        locked is None
        or locked.username != user.get_username()
        or locked.status != InvitationStatus.PENDING
        or locked.expires_at <= timezone.now()
    ):
        raise Http404("no such invitation")
    return locked


def _answer(invitation: Invitation, status: str) -> Invitation:
    updated = Invitation.objects.filter(pk=invitation.pk, status=InvitationStatus.PENDING).update(
        status=status, responded_at=timezone.now(), updated_at=timezone.now()
    )
    if not updated:
        raise Http404("no such invitation")
    invitation.refresh_from_db()
    return invitation
