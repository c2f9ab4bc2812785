"""Who may see and change what over the REST API: 401 anonymous, 404 outside one's workspaces, 403 by role."""

import pytest
from rest_framework.test import APIClient

from datasets_app.models import Dataset, Example
from tests.api_client import client_for
from tests.factories import ExampleFactory, runs_on

pytestmark = pytest.mark.django_db


@pytest.fixture
def example(dataset):
    return ExampleFactory(dataset=dataset, status="submitted")


def test_token_from_username_and_password_opens_the_api(annotator, dataset):
    client = APIClient()
    token = client.post("/api/auth/token/", {"username": "annie", "password": "pw-for-tests-1"}, format="json").json()[
        "token"
    ]
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    assert [d["name"] for d in client.get("/api/datasets/").json()] == ["Guardrails"]


def test_wrong_password_gets_no_token(annotator):
    response = APIClient().post("/api/auth/token/", {"username": "annie", "password": "wrong"}, format="json")
    assert response.status_code == 400
    assert "token" not in response.json()


@pytest.mark.parametrize("url", ["/api/workspaces/", "/api/datasets/", "/api/examples/1/", "/api/datasets/1/export/"])
def test_anonymous_requests_get_401(url):
    assert APIClient().get(url).status_code == 401


def test_session_login_works_for_the_browser(client, annotator, dataset):
    client.force_login(annotator)
    assert client.get("/api/datasets/").json()[0]["name"] == "Guardrails"


def test_outsider_gets_404_for_everything_in_another_workspace(dataset, example, outsider):
    api = client_for(outsider)
    for url in [f"/api/datasets/{dataset.pk}/", f"/api/datasets/{dataset.pk}/examples/", f"/api/examples/{example.pk}/",
                f"/api/datasets/{dataset.pk}/export/", f"/api/examples/{example.pk}/revisions/"]:  # fmt: skip
        assert api.get(url).status_code == 404, url
    assert (
        api.patch(f"/api/examples/{example.pk}/", {"prompt": "x"}, format="json", HTTP_IF_MATCH='"1"').status_code
        == 404
    )
    assert api.post(f"/api/examples/{example.pk}/status/", {"action": "approve"}, format="json").status_code == 404
    assert (
        api.post(f"/api/datasets/{dataset.pk}/examples/", {"prompt": "p", "response": "r"}, format="json").status_code
        == 404
    )
    assert api.delete(f"/api/datasets/{dataset.pk}/").status_code == 404
    assert api.get("/api/datasets/").json() == []
    assert Dataset.objects.filter(pk=dataset.pk).exists()
    assert Example.objects.get(pk=example.pk).status == "submitted"


def test_outsider_cannot_create_a_dataset_in_my_workspace(workspace, outsider):
    api = client_for(outsider)
    response = api.post("/api/datasets/", {"workspace": workspace.pk, "name": "Sneaky"}, format="json")
    missing = api.post("/api/datasets/", {"workspace": workspace.pk + 1000, "name": "Sneaky"}, format="json")
    assert response.status_code == missing.status_code == 400
    assert response.json() == missing.json() == {"workspace": ["no workspace with this id among yours"]}
    assert not Dataset.objects.filter(name="Sneaky").exists()


def test_annotator_gets_403_for_lead_actions(dataset, example, annotator):
    api = client_for(annotator)
    assert (
        api.post("/api/datasets/", {"workspace": dataset.workspace_id, "name": "Mine"}, format="json").status_code
        == 403
    )
    assert api.patch(f"/api/datasets/{dataset.pk}/", {"name": "Renamed"}, format="json").status_code == 403
    assert api.delete(f"/api/datasets/{dataset.pk}/").status_code == 403
    assert api.post(f"/api/examples/{example.pk}/status/", {"action": "approve"}, format="json").status_code == 403
    assert (
        api.post(
            f"/api/examples/{example.pk}/status/", {"action": "reject", "comment": "no"}, format="json"
        ).status_code
        == 403
    )
    assert api.delete(f"/api/examples/{example.pk}/").status_code == 403
    assert Example.objects.get(pk=example.pk).status == "submitted"
    assert Dataset.objects.get(pk=dataset.pk).name == "Guardrails"


def test_lead_can_review_and_manage_datasets(dataset, example, lead):
    api = client_for(lead)
    assert (
        api.post(f"/api/examples/{example.pk}/status/", {"action": "approve"}, format="json").json()["status"]
        == "approved"
    )
    created = api.post(
        "/api/datasets/", {"workspace": dataset.workspace_id, "name": "MCQ", "kind": "mcq"}, format="json"
    )
    assert created.status_code == 201
    assert created.json()["counts"]["total"] == 0
    assert api.delete(f"/api/datasets/{created.json()['id']}/").status_code == 204


def test_workspace_creator_is_its_admin_and_can_invite_members(annotator, outsider):
    api = client_for(annotator)
    workspace = api.post("/api/workspaces/", {"name": "Side project"}, format="json").json()
    assert workspace["role"] == "admin"
    invited = api.post(f"/api/workspaces/{workspace['id']}/invitations/", {"username": "otto", "role": "lead"})
    assert invited.status_code == 201
    assert (invited.json()["username"], invited.json()["role"], invited.json()["status"]) == ("otto", "lead", "pending")
    # not a member until they accept
    otto = client_for(outsider)
    assert [w["name"] for w in otto.get("/api/workspaces/").json()] == ["Globex"]
    (offer,) = otto.get("/api/invitations/").json()
    assert (offer["workspace"]["name"], offer["role"], offer["invited_by"]) == ("Side project", "lead", "annie")
    assert otto.post(f"/api/invitations/{offer['id']}/accept/").json()["role"] == "lead"
    assert [w["name"] for w in otto.get("/api/workspaces/").json()] == ["Globex", "Side project"]


def test_only_admins_manage_members_and_invitations(workspace, lead, outsider, annotator):
    api = client_for(lead)
    assert (
        api.post(f"/api/workspaces/{workspace.pk}/members/", {"username": "annie", "role": "admin"}).status_code == 403
    )
    assert (
        api.post(f"/api/workspaces/{workspace.pk}/invitations/", {"username": "otto", "role": "admin"}).status_code
        == 403
    )
    assert api.get(f"/api/workspaces/{workspace.pk}/invitations/").status_code == 403
    assert client_for(outsider).get(f"/api/workspaces/{workspace.pk}/invitations/").status_code == 404
    assert not workspace.memberships.filter(user=outsider).exists()
    assert workspace.memberships.get(user=annotator).role == "annotator"
    assert not workspace.invitations.exists()


def test_a_dataset_name_the_workspace_has_is_a_409_naming_it(dataset, lead):
    response = client_for(lead).post(
        "/api/datasets/", {"workspace": dataset.workspace_id, "name": "Guardrails"}, format="json"
    )
    assert response.status_code == 409
    assert response.json() == {"detail": "this workspace already has a dataset named 'Guardrails'"}
    assert Dataset.objects.filter(name="Guardrails").count() == 1


def test_a_dataset_that_runs_were_trained_on_is_not_deleted_and_the_answer_says_why(dataset, lead):
    runs_on(dataset, "succeeded", "failed")

    response = client_for(lead).delete(f"/api/datasets/{dataset.pk}/")

    assert response.status_code == 409
    assert response.json() == {
        "detail": "This dataset is used by 2 fine-tuning runs, trained on its snapshots; "
        "it cannot be deleted while they exist."
    }
    assert Dataset.objects.filter(pk=dataset.pk).exists()
