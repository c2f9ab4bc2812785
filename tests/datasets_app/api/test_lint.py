"""The lint over the REST API: any member reads the stored problems or checks the dataset again (a job when it is
large); outsiders cannot tell the dataset exists."""

import pytest
from rest_framework.test import APIClient

from datasets_app.blueprints.specs import MCQSpec, default_spec
from datasets_app.curation.services import example_create
from datasets_app.models import Example, Job, Template
from tests.api_client import client_for
from tests.datasets_app.lint.test_lint import KNEAD

pytestmark = pytest.mark.django_db


@pytest.fixture
def pairs(dataset, annotator):
    return [
        example_create(dataset=dataset, user=annotator, prompt="Tell me about {topic}.", response="Sure."),
        example_create(dataset=dataset, user=annotator, prompt=KNEAD[0], response=KNEAD[1]),
        example_create(dataset=dataset, user=annotator, prompt=KNEAD[0] + " Thanks!", response=KNEAD[1]),
    ]


def test_a_member_reads_the_problems_stored_as_pairs_were_saved(dataset, pairs, annotator):
    response = client_for(annotator).get(f"/api/datasets/{dataset.pk}/lint/")

    assert response.status_code == 200
    body = response.json()
    assert (body["checked"], body["linted_at"]) == (3, None)
    assert body["counts"]["placeholder"] == 1
    assert body["counts"]["near_duplicate"] == 0  # found only by a check of the whole dataset
    assert body["problems"] == [{
        "example": pairs[0].pk, "code": "placeholder", "field": "prompt", "line": 1,
        "message": "leftover placeholder {topic}", "related": None,
    }]  # fmt: skip
    assert body["truncated"] is False


def test_a_check_stores_near_duplicates_and_the_report_then_lists_them_side_by_side(dataset, pairs, annotator):
    api = client_for(annotator)

    checked = api.post(f"/api/datasets/{dataset.pk}/lint/")

    assert checked.status_code == 200
    assert checked.json()["pairs_with_problems"] == 3
    assert [p["code"] for p in Example.objects.get(pk=pairs[2].pk).problems] == ["near_duplicate"]
    body = api.get(f"/api/datasets/{dataset.pk}/lint/").json()
    assert body["counts"]["near_duplicate"] == 2
    (near,) = body["near_duplicates"]
    assert (near["a"], near["b"]) == (pairs[1].pk, pairs[2].pk)
    assert 0.8 <= near["similarity"] < 1
    assert body["linted_at"] == checked.json()["linted_at"] is not None
    dataset.refresh_from_db()
    assert dataset.linted_at is not None


def test_a_dataset_over_the_limit_is_checked_by_a_job_and_a_second_request_reuses_it(
    settings, dataset, pairs, annotator, lead
):
    settings.LINT_SYNC_MAX = 2

    first = client_for(annotator).post(f"/api/datasets/{dataset.pk}/lint/")
    again = client_for(lead).post(f"/api/datasets/{dataset.pk}/lint/")

    assert first.status_code == 202
    assert first["Location"] == first.json()["job_url"]
    assert (first.json()["kind"], first.json()["status"]) == ("lint", "queued")
    assert again.json()["id"] == first.json()["id"]
    assert Job.objects.filter(dataset=dataset, kind="lint").count() == 1
    assert Example.objects.get(pk=pairs[2].pk).problem_count == 0  # nothing checked in the request


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
    assert response.status_code == 409
    assert response.json() == {"detail": "can't approve: line 6: the answer E is not among the options A–D"}
