"""Joining a workspace: only an invitation the invited user accepts makes a member, and inviting reveals
nothing about who has an account. Workspace names are unique per creator, not site-wide."""

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.http import Http404
from django.utils import timezone

from datasets_app.curation.invitations import (
    invitation_accept,
    invitation_create,
    invitation_decline,
    invitation_get_for_user,
    invitation_list_for_user,
    invitation_list_for_workspace,
    invitation_revoke,
)
from datasets_app.curation.services import membership_set, workspace_create
from datasets_app.errors import NotAllowed, NotAMember
from datasets_app.models import Invitation, Workspace
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def newcomer(db):
    return UserFactory(username="nina")


def test_an_invitation_makes_no_member_until_it_is_accepted(workspace, admin_member, newcomer):
    invitation = invitation_create(workspace=workspace, by=admin_member, username="nina", role="lead")

    assert not workspace.memberships.filter(user=newcomer).exists()
    assert list(invitation_list_for_user(user=newcomer)) == [invitation]

    membership = invitation_accept(invitation=invitation, user=newcomer)

    assert (membership.workspace, membership.role) == (workspace, "lead")
    invitation.refresh_from_db()
    assert (invitation.status, invitation.responded_at is not None) == ("accepted", True)
    assert list(invitation_list_for_user(user=newcomer)) == []


def test_inviting_a_name_nobody_has_looks_exactly_like_inviting_someone(workspace, admin_member, newcomer):
    known = invitation_create(workspace=workspace, by=admin_member, username="nina", role="annotator")
    unknown = invitation_create(workspace=workspace, by=admin_member, username="nobody-by-this-name", role="annotator")

    def seen_by_admin(invitation: Invitation) -> tuple:
        return (invitation.status, invitation.role, invitation.invited_by, invitation.expires_at.date())

    assert seen_by_admin(known) == seen_by_admin(unknown)
    assert [i.username for i in invitation_list_for_workspace(workspace=workspace, by=admin_member)] == [
        "nina",
        "nobody-by-this-name",
    ]


def test_declining_and_revoking_end_an_invitation_and_make_no_member(workspace, admin_member, newcomer):
    declined = invitation_create(workspace=workspace, by=admin_member, username="nina", role="annotator")
    invitation_decline(invitation=declined, user=newcomer)
    again = invitation_create(workspace=workspace, by=admin_member, username="nina", role="lead")
    invitation_revoke(invitation=again, by=admin_member)

    assert [(i.status, i.role) for i in Invitation.objects.order_by("id")] == [
        ("declined", "annotator"),
        ("revoked", "lead"),
    ]
    with pytest.raises(Http404):
        invitation_accept(invitation=again, user=newcomer)
    assert not workspace.memberships.filter(user=newcomer).exists()


def test_only_the_invited_user_can_answer_and_only_before_it_lapses(workspace, admin_member, newcomer, annotator):
    invitation = invitation_create(workspace=workspace, by=admin_member, username="nina", role="admin")

    with pytest.raises(Http404):
        invitation_accept(invitation=invitation, user=annotator)  # someone else
    with pytest.raises(Http404):
        invitation_get_for_user(user=annotator, pk=invitation.pk)

    Invitation.objects.filter(pk=invitation.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    with pytest.raises(Http404):
        invitation_accept(invitation=invitation, user=newcomer)
    assert list(invitation_list_for_user(user=newcomer)) == []
    assert not workspace.memberships.filter(user=newcomer).exists()


def test_invitations_lapse_after_the_configured_days(workspace, admin_member, settings):
    settings.INVITATION_TTL_DAYS = 3
    invitation = invitation_create(workspace=workspace, by=admin_member, username="nina", role="annotator")
    assert timedelta(days=2, hours=23) < invitation.expires_at - timezone.now() <= timedelta(days=3)


def test_inviting_again_renews_the_pending_invitation(workspace, admin_member):
    first = invitation_create(workspace=workspace, by=admin_member, username="nina", role="annotator")
    second = invitation_create(workspace=workspace, by=admin_member, username="nina", role="lead")

    assert second.pk == first.pk
    assert Invitation.objects.get().role == "lead"


def test_only_admins_invite_revoke_and_list(workspace, lead, admin_member):
    invitation = invitation_create(workspace=workspace, by=admin_member, username="nina", role="annotator")
    with pytest.raises(NotAllowed):
        invitation_create(workspace=workspace, by=lead, username="x", role="admin")
    with pytest.raises(NotAllowed):
        invitation_revoke(invitation=invitation, by=lead)
    with pytest.raises(NotAllowed):
        invitation_list_for_workspace(workspace=workspace, by=lead)
    assert Invitation.objects.get().status == "pending"


def test_a_member_is_not_invited_again(workspace, admin_member, annotator):
    with pytest.raises(ValidationError, match="annie is already a member"):
        invitation_create(workspace=workspace, by=admin_member, username="annie", role="lead")


def test_an_admin_changes_only_members_roles_and_keeps_an_admin(workspace, admin_member, annotator, newcomer):
    assert membership_set(workspace=workspace, user=annotator, role="lead", by=admin_member).role == "lead"
    with pytest.raises(NotAMember):
        membership_set(workspace=workspace, user=newcomer, role="lead", by=admin_member)
    with pytest.raises(ValidationError, match="needs an admin"):
        membership_set(workspace=workspace, user=admin_member, role="lead", by=admin_member)
    assert not workspace.memberships.filter(user=newcomer).exists()
    # the system itself (the demo) still adds members directly
    assert membership_set(workspace=workspace, user=newcomer, role="annotator", by=None).role == "annotator"


def test_workspace_names_are_unique_per_creator_not_site_wide(annotator, outsider):
    mine = workspace_create(name="Research", user=annotator)
    theirs = workspace_create(name="Research", user=outsider)  # says nothing about annotator's workspace

    assert mine.pk != theirs.pk
    with pytest.raises(ValidationError, match="you already have a workspace named 'Research'"):
        workspace_create(name="Research", user=annotator)
    assert Workspace.objects.filter(name="Research").count() == 2
