import pytest
from django.urls import reverse

from datasets_app.demo import DEMO_USERS, seed_demo
from datasets_app.models import Dataset, Example, ExampleStatus, Workspace

pytestmark = pytest.mark.django_db


def test_demo_has_two_datasets_of_at_least_twenty_pairs():
    seed_demo()
    workspace = Workspace.objects.get(name="Demo workspace")
    kinds = {dataset.kind: dataset.examples.count() for dataset in workspace.datasets.all()}
    assert set(kinds) == {"guardrail", "mcq"}
    assert min(kinds.values()) >= 20
    assert (
        Example.objects.filter(status=ExampleStatus.APPROVED).count()
        > Example.objects.exclude(status=ExampleStatus.APPROVED).count()
    )


def test_seeding_twice_duplicates_nothing():
    seed_demo()
    counts = (Workspace.objects.count(), Dataset.objects.count(), Example.objects.count())
    again = seed_demo()
    assert (Workspace.objects.count(), Dataset.objects.count(), Example.objects.count()) == counts
    assert set(again.values()) == {0}


@pytest.mark.parametrize("user", DEMO_USERS, ids=lambda user: user["username"])
def test_demo_users_can_log_in_and_see_the_demo_datasets(client, user):
    seed_demo()
    response = client.post(reverse("login"), {"username": user["username"], "password": user["password"]}, follow=True)
    page = response.content.decode()
    assert "Support assistant guardrails" in page
    assert "MCQ writer" in page


def test_wrong_password_shows_an_error(client):
    seed_demo()
    response = client.post(reverse("login"), {"username": "lead", "password": "nope"})
    assert "didn't match" in response.content.decode()
