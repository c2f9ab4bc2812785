"""The API takes what its schema says and nothing looser: JSON bodies with values of their own JSON type, query
filters and headers in their documented form, whole earlier turns; and a request that clashes with what is
stored is a 409, not a 400."""

import pytest

from datasets_app.curation.services import example_create, example_set_status
from datasets_app.models import Example, Workspace
from tests.api_client import client_for
from training_app.models import TrainingRun

pytestmark = pytest.mark.django_db


def test_a_value_of_another_json_type_is_refused_not_converted(dataset, lead):
    api = client_for(lead)

    named_by_a_number = api.post("/api/workspaces/", {"name": 0}, format="json")
    flag_as_number = api.patch(f"/api/datasets/{dataset.pk}/", {"require_valid": 1}, format="json")
    id_as_text = api.post("/api/datasets/", {"workspace": str(dataset.workspace_id), "name": "New"}, format="json")

    assert named_by_a_number.status_code == 400
    assert named_by_a_number.json() == {"name": ["must be text (a JSON string)"]}
    assert flag_as_number.json() == {"require_valid": ["must be true or false"]}
    assert id_as_text.json() == {"workspace": ["must be an id (a whole number)"]}
    assert not Workspace.objects.filter(name="0").exists()


def test_a_form_body_is_refused_where_json_is_expected(lead):
    response = client_for(lead).post("/api/workspaces/", {"name": "Team"}, format="multipart")
    assert response.status_code == 415
    assert not Workspace.objects.filter(name="Team").exists()


@pytest.mark.parametrize("query", ["page_size=0", "page_size=1001", "page_size=ten", "status=", "on_duplicate=x"])
def test_query_values_outside_the_documented_ones_are_400(dataset, annotator, query):
    api, url = client_for(annotator), f"/api/datasets/{dataset.pk}/examples/?{query}"
    response = api.post(url, {"prompt": "p", "response": "r"}) if query.startswith("on_") else api.get(url)
    assert response.status_code == 400, response.json()
    assert not Example.objects.exists()


@pytest.mark.parametrize("url", ["/api/datasets/?workspace=", "/api/runs/?dataset=abc", "/api/templates/?workspace=-1"])
def test_an_id_filter_takes_only_an_id(lead, url):
    assert client_for(lead).get(url).status_code == 400


def test_if_match_takes_the_etag_as_it_was_sent(dataset, annotator):
    example = example_create(dataset=dataset, user=annotator, prompt="p?", response="r")
    api, url = client_for(annotator), f"/api/examples/{example.pk}/"

    assert api.patch(url, {"response": "x"}, HTTP_IF_MATCH='"1"').status_code == 200
    assert api.patch(url, {"response": "y"}, HTTP_IF_MATCH='W/"2"').status_code == 200
    assert api.patch(url, {"response": "z"}, HTTP_IF_MATCH="version 3").status_code == 400
    assert Example.objects.get(pk=example.pk).response == "y"


def test_an_edit_must_send_whole_earlier_turns(dataset, annotator):
    example = example_create(dataset=dataset, user=annotator, prompt="p?", response="r")

    response = client_for(annotator).patch(
        f"/api/examples/{example.pk}/", {"history": [{"content": "who speaks?"}], "version": 1}
    )

    assert response.status_code == 400
    assert "role" in str(response.json())
    assert Example.objects.get(pk=example.pk).history == []


def test_blanking_a_submitted_pair_clashes_with_its_status(dataset, annotator):
    example = example_create(dataset=dataset, user=annotator, prompt="p?", response="r", status="submitted")

    response = client_for(annotator).patch(f"/api/examples/{example.pk}/", {"response": " ", "version": 1})

    assert response.status_code == 409
    assert response.json() == {"detail": "may not be blank once submitted."}
    assert Example.objects.get(pk=example.pk).response == "r"


def test_a_rejection_without_a_comment_is_400_even_when_stale(dataset, annotator, lead):
    example = example_create(dataset=dataset, user=annotator, prompt="p?", response="r", status="submitted")
    example_set_status(example=example, user=lead, action="approve")

    response = client_for(lead).post(f"/api/examples/{example.pk}/status/", {"action": "reject"}, HTTP_IF_MATCH='"1"')

    assert response.status_code == 400
    assert "comment" in response.json()


def test_a_run_takes_hyperparameters_only_as_documented(dataset, lead):
    api = client_for(lead)

    twice = api.post("/api/runs/", {"dataset": dataset.pk, "hyperparameters": {"method": "full"}})
    odd_module = api.post("/api/runs/", {"dataset": dataset.pk, "hyperparameters": {"lora_target_modules": ["q\n"]}})

    assert twice.status_code == 400
    assert "hyperparameters.method" in twice.json()
    assert odd_module.status_code == 400
    assert "hyperparameters.lora_target_modules" in odd_module.json()
    assert not TrainingRun.objects.exists()


def test_demoting_the_last_admin_clashes_with_the_workspace_needing_one(workspace, admin_member):
    response = client_for(admin_member).post(
        f"/api/workspaces/{workspace.pk}/members/", {"username": "ada", "role": "lead"}
    )

    assert response.status_code == 409
    assert response.json() == {"detail": "the workspace needs an admin: make someone else admin first"}
    assert workspace.memberships.get(user=admin_member).role == "admin"
