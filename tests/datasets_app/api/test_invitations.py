"""Invitations over the REST API: admins invite and revoke, the invited accept or decline; nothing tells anyone
whether a username exists, and nothing about a workspace reaches people outside it."""

import pytest

from datasets_app.models import Invitation, Membership
from tests.api_client import client_for
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

VOLATILE = ("id", "username", "created_at", "expires_at")


@pytest.fixture
def nina(db):
    return UserFactory(username="nina")


def _invite(api, workspace, username, role="annotator"):
    return api.post(f"/api/workspaces/{workspace.pk}/invitations/", {"username": username, "role": role}, format="json")


def _shape(response) -> tuple:
    body = response.json()
    return response.status_code, sorted(body), {key: value for key, value in body.items() if key not in VOLATILE}


def test_inviting_an_unknown_name_answers_exactly_like_a_known_one(workspace, admin_member, nina):
    api = client_for(admin_member)

    known = _invite(api, workspace, "nina")
    unknown = _invite(api, workspace, "no-such-user-anywhere")

    assert (
        _shape(known)
        == _shape(unknown)
        == (
            201,
            sorted(["id", "username", "role", "status", "invited_by", "created_at", "expires_at"]),
            {"role": "annotator", "status": "pending", "invited_by": "ada"},
        )
    )
    listed = api.get(f"/api/workspaces/{workspace.pk}/invitations/").json()
    assert [(i["username"], i["status"]) for i in listed] == [("nina", "pending"), ("no-such-user-anywhere", "pending")]


def test_changing_the_role_of_a_non_member_answers_like_an_unknown_name(workspace, admin_member, nina, annotator):
    api = client_for(admin_member)
    url = f"/api/workspaces/{workspace.pk}/members/"

    stranger = api.post(url, {"username": "nina", "role": "lead"}, format="json")
    nobody = api.post(url, {"username": "nobody", "role": "lead"}, format="json")
    member = api.post(url, {"username": "annie", "role": "lead"}, format="json")

    assert (stranger.status_code, nobody.status_code) == (404, 404)
    assert stranger.json() == {"detail": "no member named 'nina' in this workspace"}
    assert nobody.json() == {"detail": "no member named 'nobody' in this workspace"}
    assert member.json() == {"username": "annie", "role": "lead"}
    assert not Membership.objects.filter(user=nina).exists()


def test_the_invited_user_sees_accepts_and_becomes_a_member(workspace, admin_member, nina):
    _invite(client_for(admin_member), workspace, "nina", role="lead")
    api = client_for(nina)

    (offer,) = api.get("/api/invitations/").json()
    assert offer["workspace"] == {"id": workspace.pk, "name": "Acme"}
    assert (offer["role"], offer["invited_by"]) == ("lead", "ada")
    assert api.get(f"/api/workspaces/{workspace.pk}/").status_code == 404  # not a member yet

    accepted = api.post(f"/api/invitations/{offer['id']}/accept/")

    assert accepted.json() == {"workspace": workspace.pk, "username": "nina", "role": "lead"}
    assert api.get(f"/api/workspaces/{workspace.pk}/").json()["role"] == "lead"
    assert api.get("/api/invitations/").json() == []
    assert api.post(f"/api/invitations/{offer['id']}/accept/").status_code == 404  # answered already


def test_declining_makes_no_member(workspace, admin_member, nina):
    _invite(client_for(admin_member), workspace, "nina")
    api = client_for(nina)
    (offer,) = api.get("/api/invitations/").json()

    assert api.post(f"/api/invitations/{offer['id']}/decline/").status_code == 204

    assert Invitation.objects.get().status == "declined"
    assert not Membership.objects.filter(user=nina).exists()


def test_an_admin_revokes_a_pending_invitation(workspace, admin_member, nina):
    admin = client_for(admin_member)
    invitation = _invite(admin, workspace, "nina").json()

    assert admin.delete(f"/api/workspaces/{workspace.pk}/invitations/{invitation['id']}/").status_code == 204

    assert admin.get(f"/api/workspaces/{workspace.pk}/invitations/").json() == []
    assert client_for(nina).get("/api/invitations/").json() == []
    assert client_for(nina).post(f"/api/invitations/{invitation['id']}/accept/").status_code == 404


def test_someone_elses_invitation_answers_like_a_missing_one(workspace, admin_member, nina, annotator):
    invitation = _invite(client_for(admin_member), workspace, "nina").json()
    api = client_for(annotator)

    for action in ("accept", "decline"):
        theirs = api.post(f"/api/invitations/{invitation['id']}/{action}/")
        missing = api.post(f"/api/invitations/{invitation['id'] + 1000}/{action}/")
        assert (
            (theirs.status_code, theirs.json())
            == (missing.status_code, missing.json())
            == (
                404,
                {"detail": "no such invitation"},
            )
        )
    assert Invitation.objects.get().status == "pending"


def test_nothing_about_invitations_reaches_non_admins(workspace, admin_member, lead, outsider):
    invitation = _invite(client_for(admin_member), workspace, "nina").json()
    url = f"/api/workspaces/{workspace.pk}/invitations/"

    assert client_for(lead).get(url).status_code == 403
    assert client_for(lead).delete(f"{url}{invitation['id']}/").status_code == 403
    assert client_for(outsider).get(url).status_code == 404
    assert client_for(outsider).post(url, {"username": "otto", "role": "admin"}).status_code == 404
    assert client_for(outsider).delete(f"{url}{invitation['id']}/").status_code == 404
    assert Invitation.objects.get().status == "pending"


def test_workspace_names_reveal_nothing_across_teams(outsider, annotator):
    taken = client_for(outsider).post("/api/workspaces/", {"name": "Acme"}, format="json")  # annie's team is "Acme"
    twice = client_for(outsider).post("/api/workspaces/", {"name": "Acme"}, format="json")

    assert taken.status_code == 201
    assert twice.status_code == 409
    assert twice.json() == {"detail": "you already have a workspace named 'Acme'"}
