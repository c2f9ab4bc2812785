"""The lint over the REST API: any member reads the report or stores it; outsiders cannot tell the dataset exists."""

import pytest
from rest_framework.test import APIClient

from datasets_app.models import Example, Template
from datasets_app.services import example_create
from datasets_app.template_specs import MCQSpec, default_spec
from tests.api_client import client_for

pytestmark = pytest.mark.django_db

KNEAD = (
    "How long should I knead bread dough by hand before letting it rise?",
    "Knead it for about ten minutes, until the dough is smooth and springs back when you press it.",
)


@pytest.fixture
def pairs(dataset, annotator):
    return [
        example_create(dataset=dataset, user=annotator, prompt="Tell me about {topic}.", response="Sure."),
        example_create(dataset=dataset, user=annotator, prompt=KNEAD[0], response=KNEAD[1]),
        example_create(dataset=dataset, user=annotator, prompt=KNEAD[0] + " Thanks!", response=KNEAD[1]),
    ]


def test_a_member_reads_the_report(dataset, pairs, annotator):
    response = client_for(annotator).get(f"/api/datasets/{dataset.pk}/lint/")
    assert response.status_code == 200
    body = response.json()
    assert body["checked"] == 3
    assert body["counts"]["placeholder"] == 1
    assert body["counts"]["near_duplicate"] == 2
    assert body["problems"][0] == {
        "example": pairs[0].pk, "code": "placeholder", "field": "prompt", "line": 1,
        "message": "leftover placeholder {topic}", "related": None,
    }  # fmt: skip
    (near,) = body["near_duplicates"]
    assert (near["a"], near["b"]) == (pairs[1].pk, pairs[2].pk)
    assert body["truncated"] is False
    assert Example.objects.get(pk=pairs[1].pk).problem_count == 0  # reading stores nothing


def test_an_annotator_stores_the_findings_and_the_pairs_show_them(dataset, pairs, annotator):
    api = client_for(annotator)
    response = api.post(f"/api/datasets/{dataset.pk}/lint/")
    assert response.status_code == 200
    assert response.json()["pairs_with_problems"] == 3
    assert Example.objects.get(pk=pairs[2].pk).problem_count == 1
    assert [p["code"] for p in Example.objects.get(pk=pairs[2].pk).problems] == ["near_duplicate"]


def test_outsiders_get_404_and_anonymous_users_401(dataset, pairs, outsider):
    api = client_for(outsider)
    assert api.get(f"/api/datasets/{dataset.pk}/lint/").status_code == 404
    assert api.post(f"/api/datasets/{dataset.pk}/lint/").status_code == 404
    assert APIClient().get(f"/api/datasets/{dataset.pk}/lint/").status_code == 401
    assert APIClient().post(f"/api/datasets/{dataset.pk}/lint/").status_code == 401
    assert Example.objects.get(pk=pairs[2].pk).problem_count == 0


def test_approving_an_invalid_pair_over_the_api_says_why(dataset, annotator, lead):
    dataset.template = Template.objects.create(
        workspace=dataset.workspace, name="MCQ", kind="mcq", spec=default_spec("mcq")
    )
    dataset.require_valid = True
    dataset.save()
    broken = MCQSpec().render("Which?", ["a", "b", "c", "d"], 0, "Because.").replace("Answer: A", "Answer: E")
    example = example_create(dataset=dataset, user=annotator, prompt="Ask me.", response=broken, status="submitted")
    response = client_for(lead).post(f"/api/examples/{example.pk}/status/", {"action": "approve"}, format="json")
    assert response.status_code == 400
    assert response.json() == {"non_field_errors": ["can't approve: line 6: the answer E is not among the options A–D"]}
