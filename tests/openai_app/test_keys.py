"""API keys: shown once, stored hashed, capped at the creator's role, dead once revoked or orphaned; the /api/
endpoints and the page are for admins only; /v1/ takes only API keys and /api/ only its own credentials."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from datasets_app.errors import NotAllowed
from datasets_app.models import Membership, Role
from openai_app.keys import api_key_create, key_access, secret_hash
from openai_app.models import ApiKey
from tests.api_client import client_for

pytestmark = pytest.mark.django_db


def bearer(secret: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return client


# --- services


def test_only_a_hash_of_the_secret_is_stored(admin_member, workspace):
    key, secret = api_key_create(workspace=workspace, by=admin_member, name="CI", role="lead")
    assert secret.startswith("sk-inst-")
    assert len(secret) > 40
    stored = ApiKey.objects.filter(pk=key.pk).values().get()
    assert secret not in [str(value) for value in stored.values()]
    assert stored["secret_hash"] == secret_hash(secret)
    assert secret.startswith(stored["prefix"])
    assert len(stored["prefix"]) < 16


def test_only_admins_make_keys_and_never_admin_keys(lead, admin_member, workspace):
    with pytest.raises(NotAllowed):
        api_key_create(workspace=workspace, by=lead, name="mine", role="annotator")
    with pytest.raises(Exception, match="role"):
        api_key_create(workspace=workspace, by=admin_member, name="root", role="admin")
    assert not ApiKey.objects.exists()


def test_a_key_acts_with_the_lower_of_its_role_and_its_creators(admin_member, workspace, key_of):
    secret = key_of("lead")
    assert key_access(secret=secret).role == Role.LEAD
    Membership.objects.filter(user=admin_member).update(role=Role.ANNOTATOR)  # the creator was demoted
    access = key_access(secret=secret)
    assert (access.role, access.user, access.workspace) == (Role.ANNOTATOR, admin_member, workspace)
    admin_member.is_active = False
    admin_member.save()
    assert key_access(secret=secret) is None


def test_last_used_is_written_at_most_once_a_minute(key_of, django_assert_num_queries):
    secret = key_of("lead")
    key_access(secret=secret)
    first = ApiKey.objects.get().last_used_at
    assert first is not None
    with django_assert_num_queries(2):  # the key and the membership: no write
        key_access(secret=secret)
    assert ApiKey.objects.get().last_used_at == first
    ApiKey.objects.update(last_used_at=first - timedelta(minutes=2))
    key_access(secret=secret)
    assert ApiKey.objects.get().last_used_at > first


# --- /api/workspaces/{id}/api-keys/


def test_admins_make_list_and_revoke_keys_over_the_api(admin_member, workspace):
    api = client_for(admin_member)
    url = f"/api/workspaces/{workspace.pk}/api-keys/"
    made = api.post(url, {"name": "Nightly fine-tune", "role": "lead"})
    assert made.status_code == 201
    body = made.json()
    assert body["secret"].startswith(body["prefix"])
    assert (body["name"], body["role"], body["created_by"], body["revoked"]) == (
        "Nightly fine-tune", "lead", "ada", False,
    )  # fmt: skip
    assert bearer(body["secret"]).get("/v1/models").status_code == 200

    listed = api.get(url).json()
    assert [key["id"] for key in listed] == [body["id"]]
    assert "secret" not in listed[0]
    assert body["secret"] not in str(listed)
    assert listed[0]["last_used_at"] is not None

    assert api.delete(f"{url}{body['id']}/").status_code == 204
    assert api.get(url).json()[0]["revoked"] is True
    answer = bearer(body["secret"]).get("/v1/models")
    assert answer.status_code == 401
    assert answer.json()["error"]["code"] == "invalid_api_key"


def test_key_endpoints_refuse_non_admins_403_and_outsiders_404(lead, admin_member, outsider, workspace, key_of):
    key = ApiKey.objects.get(secret_hash=secret_hash(key_of("lead")))
    url = f"/api/workspaces/{workspace.pk}/api-keys/"
    member, stranger = client_for(lead), client_for(outsider)
    assert member.get(url).status_code == 403
    assert member.post(url, {"name": "x", "role": "lead"}).status_code == 403
    assert member.delete(f"{url}{key.pk}/").status_code == 403
    assert stranger.get(url).status_code == 404
    assert stranger.post(url, {"name": "x", "role": "lead"}).status_code == 404
    assert stranger.delete(f"{url}{key.pk}/").status_code == 404
    assert ApiKey.objects.get().revoked_at is None
    assert ApiKey.objects.count() == 1


def test_a_bad_key_request_names_the_field(admin_member, workspace):
    answer = client_for(admin_member).post(f"/api/workspaces/{workspace.pk}/api-keys/", {"name": " ", "role": "admin"})
    assert answer.status_code == 400
    assert set(answer.json()) == {"name", "role"}


# --- which credentials each API takes


def test_v1_takes_only_api_keys_and_api_takes_none(admin_member, key_of, client):
    user_token = client_for(admin_member)
    refused = user_token.get("/v1/models")
    assert refused.status_code == 401
    assert refused.json()["error"]["type"] == "invalid_request_error"
    client.force_login(admin_member)
    assert client.get("/v1/models").status_code == 401  # a browser session is not a key either
    missing = APIClient().get("/v1/models")
    assert missing.status_code == 401
    assert "API key" in missing.json()["error"]["message"]
    assert missing["WWW-Authenticate"].startswith("Bearer")
    assert bearer(key_of("lead")).get("/api/workspaces/").status_code == 401


def test_v1_errors_keep_openai_shape_for_methods_and_unknown_paths(key_of):
    api = bearer(key_of("lead"))
    for answer, status in ((api.put("/v1/models"), 405), (api.get("/v1/nothing"), 404)):
        assert answer.status_code == status
        assert set(answer.json()["error"]) == {"message", "type", "param", "code"}


# --- the page


def test_the_keys_page_shows_a_new_secret_once_and_escapes_names(client, admin_member, workspace):
    client.force_login(admin_member)
    url = reverse("workspace-api-keys", args=[workspace.pk])
    made = client.post(reverse("workspace-api-key-create", args=[workspace.pk]), {"name": "<b>CI</b>", "role": "lead"})
    assert made.status_code == 200
    assert made["Cache-Control"] == "no-store"
    page = made.content.decode()
    secret = page.split("data-secret>")[1].split("<")[0]
    assert key_access(secret=secret) is not None
    assert "&lt;b&gt;CI&lt;/b&gt;" in page
    assert "<b>CI</b>" not in page

    again = client.get(url).content.decode()
    assert secret not in again
    assert ApiKey.objects.get().prefix in again

    client.post(reverse("workspace-api-key-revoke", args=[workspace.pk, ApiKey.objects.get().pk]))
    assert key_access(secret=secret) is None
    assert "revoked" in client.get(url).content.decode()


def test_the_keys_page_is_for_admins_only(client, lead, outsider, admin_member, workspace):
    url = reverse("workspace-api-keys", args=[workspace.pk])
    members_page = reverse("workspace-members", args=[workspace.pk])
    client.force_login(lead)
    assert client.get(url).status_code == 403
    assert client.post(reverse("workspace-api-key-create", args=[workspace.pk]), {"name": "x"}).status_code == 403
    assert url not in client.get(members_page).content.decode()
    client.force_login(outsider)
    assert client.get(url).status_code == 404
    client.force_login(admin_member)
    assert url in client.get(members_page).content.decode()
    assert not ApiKey.objects.exists()


def test_a_revoked_key_keeps_its_row_and_revoking_again_changes_nothing(admin_member, workspace, key_of):
    key_of("lead")
    api = client_for(admin_member)
    key = ApiKey.objects.get()
    api.delete(f"/api/workspaces/{workspace.pk}/api-keys/{key.pk}/")
    first = ApiKey.objects.get().revoked_at
    assert first is not None
    assert first <= timezone.now()
    assert api.delete(f"/api/workspaces/{workspace.pk}/api-keys/{key.pk}/").status_code == 204
    assert ApiKey.objects.get().revoked_at == first
