"""The members page and invitations in the browser: admins invite, revoke and change roles; the invited see
their invitations on the home page and accept or decline. Roles are checked on the server, CSRF applies,
and what users typed is shown as text."""

import pytest
from django.test import Client
from django.urls import reverse

from datasets_app.curation.invitations import invitation_create
from datasets_app.models import Invitation, Membership
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def nina(db):
    return UserFactory(username="nina")


def test_admins_invite_from_the_members_page_and_see_it_pending(client, workspace, admin_member, annotator):
    client.force_login(admin_member)
    url = reverse("workspace-members", args=[workspace.pk])
    assert "data-invite-form" in client.get(url).content.decode()

    response = client.post(reverse("workspace-invite", args=[workspace.pk]), {"username": "nina", "role": "lead"})

    assert response.status_code == 302
    page = client.get(response["Location"]).content.decode()
    assert "Invited nina as lead. They become a member once they accept." in page
    assert 'data-invitation="nina"' in page
    assert not Membership.objects.filter(workspace=workspace, user__username="nina").exists()


def test_an_unknown_name_is_invited_with_the_same_message(client, workspace, admin_member, nina):
    client.force_login(admin_member)
    pages = [
        client.post(reverse("workspace-invite", args=[workspace.pk]), {"username": name, "role": "lead"}, follow=True)
        for name in ("nina", "nobody-at-all")
    ]
    assert "Invited nina as lead." in pages[0].content.decode()
    assert "Invited nobody-at-all as lead." in pages[1].content.decode()
    assert [page.status_code for page in pages] == [200, 200]


def test_the_invited_user_accepts_on_the_home_page(client, workspace, admin_member, nina):
    invitation = invitation_create(workspace=workspace, by=admin_member, username="nina", role="annotator")
    client.force_login(nina)
    home = client.get(reverse("home")).content.decode()
    assert "data-invitations" in home
    assert "<strong>Acme</strong> as annotator, from ada" in home

    response = client.post(reverse("invitation-accept", args=[invitation.pk]), follow=True)

    assert "You joined Acme as annotator." in response.content.decode()
    assert Membership.objects.get(workspace=workspace, user=nina).role == "annotator"
    assert "data-invitations" not in client.get(reverse("home")).content.decode()


def test_declining_on_the_home_page_makes_no_member(client, workspace, admin_member, nina):
    invitation = invitation_create(workspace=workspace, by=admin_member, username="nina", role="lead")
    client.force_login(nina)

    response = client.post(reverse("invitation-decline", args=[invitation.pk]), follow=True)

    assert "Declined the invitation to Acme." in response.content.decode()
    assert not Membership.objects.filter(user=nina).exists()


def test_admins_revoke_and_change_roles(client, workspace, admin_member, annotator):
    invitation = invitation_create(workspace=workspace, by=admin_member, username="nina", role="lead")
    client.force_login(admin_member)

    client.post(reverse("invitation-revoke", args=[workspace.pk, invitation.pk]))
    client.post(reverse("workspace-role", args=[workspace.pk]), {"username": "annie", "role": "lead"})

    assert Invitation.objects.get().status == "revoked"
    assert Membership.objects.get(user=annotator).role == "lead"


def test_a_role_change_for_a_non_member_is_a_404_like_an_unknown_name(client, workspace, admin_member, nina):
    client.force_login(admin_member)
    url = reverse("workspace-role", args=[workspace.pk])
    assert client.post(url, {"username": "nina", "role": "admin"}).status_code == 404
    assert client.post(url, {"username": "nobody", "role": "admin"}).status_code == 404
    assert not Membership.objects.filter(user=nina).exists()


def test_non_admins_see_members_but_cannot_invite_revoke_or_change_roles(client, workspace, admin_member, lead):
    invitation = invitation_create(workspace=workspace, by=admin_member, username="nina", role="lead")
    client.force_login(lead)
    page = client.get(reverse("workspace-members", args=[workspace.pk])).content.decode()
    assert 'data-member="ada"' in page
    assert "data-invite-form" not in page
    assert "nina" not in page  # pending invitations are the admins' business

    for url, data in [
        (reverse("workspace-invite", args=[workspace.pk]), {"username": "x", "role": "admin"}),
        (reverse("invitation-revoke", args=[workspace.pk, invitation.pk]), {}),
        (reverse("workspace-role", args=[workspace.pk]), {"username": "leo", "role": "admin"}),
    ]:
        assert client.post(url, data).status_code == 403, url
    assert Invitation.objects.get().status == "pending"
    assert Membership.objects.get(user=lead).role == "lead"


def test_outsiders_get_404_for_another_workspaces_members_and_invitations(client, workspace, admin_member, outsider):
    invitation = invitation_create(workspace=workspace, by=admin_member, username="nina", role="lead")
    client.force_login(outsider)
    assert client.get(reverse("workspace-members", args=[workspace.pk])).status_code == 404
    assert client.post(reverse("workspace-invite", args=[workspace.pk]), {"username": "otto"}).status_code == 404
    assert client.post(reverse("invitation-revoke", args=[workspace.pk, invitation.pk])).status_code == 404
    assert client.post(reverse("invitation-accept", args=[invitation.pk])).status_code == 404
    assert Invitation.objects.get().status == "pending"


def test_invitation_forms_need_the_csrf_token(workspace, admin_member, nina):
    invitation = invitation_create(workspace=workspace, by=admin_member, username="nina", role="lead")
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(nina)
    assert strict.post(reverse("invitation-accept", args=[invitation.pk])).status_code == 403
    strict.force_login(admin_member)
    assert strict.post(reverse("workspace-invite", args=[workspace.pk]), {"username": "x"}).status_code == 403
    assert Invitation.objects.get().status == "pending"
    assert not Membership.objects.filter(user=nina).exists()


def test_names_are_shown_as_text(client, workspace, admin_member):
    invitation_create(workspace=workspace, by=admin_member, username="<img src=x onerror=alert(1)>", role="lead")
    client.force_login(admin_member)
    page = client.get(reverse("workspace-members", args=[workspace.pk])).content.decode()
    assert "<img src=x" not in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page
