"""Work queues: the oldest free pair, a lease so two people never get the same one, released when done."""

import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from datasets_app.curation.queues import example_lease_next
from datasets_app.models import ExampleLease
from tests.factories import ExampleFactory, MembershipFactory, UserFactory

pytestmark = pytest.mark.django_db


def _member(workspace, username, role):
    user = UserFactory(username=username)
    MembershipFactory(workspace=workspace, user=user, role=role)
    return user


def next_from(client, dataset, queue, **data):
    response = client.post(reverse("dataset-queue", args=[dataset.pk, queue]), data)
    assert response.status_code == 302
    return response["Location"]


def editor_url(example, queue):
    return f"{reverse('example', args=[example.pk])}?queue={queue}"


def test_two_people_asking_for_the_next_draft_get_different_ones(client, dataset, annotator, workspace):
    first, second, _ = (ExampleFactory(dataset=dataset) for _ in range(3))
    other = _member(workspace, "bea", "annotator")
    client.force_login(annotator)
    assert next_from(client, dataset, "draft") == editor_url(first, "draft")
    client.force_login(other)
    assert next_from(client, dataset, "draft") == editor_url(second, "draft")
    # asking again keeps each person on their own pair
    client.force_login(annotator)
    assert next_from(client, dataset, "draft") == editor_url(first, "draft")


def test_review_queue_hands_out_submitted_pairs_oldest_first(client, dataset, lead):
    ExampleFactory(dataset=dataset, status="draft")
    oldest = ExampleFactory(dataset=dataset, status="submitted")
    ExampleFactory(dataset=dataset, status="submitted")
    client.force_login(lead)
    assert next_from(client, dataset, "review") == editor_url(oldest, "review")


def test_an_expired_lease_frees_the_pair(dataset, annotator, workspace):
    pair = ExampleFactory(dataset=dataset)
    other = _member(workspace, "bea", "annotator")
    assert example_lease_next(dataset=dataset, user=annotator, queue="draft") == pair
    assert example_lease_next(dataset=dataset, user=other, queue="draft") is None
    ExampleLease.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    assert example_lease_next(dataset=dataset, user=other, queue="draft") == pair
    assert ExampleLease.objects.get().user == other


def test_save_and_next_releases_the_pair_and_leases_the_following_one(client, dataset, annotator):
    first, second = ExampleFactory(dataset=dataset), ExampleFactory(dataset=dataset)
    client.force_login(annotator)
    next_from(client, dataset, "draft")
    response = client.post(
        reverse("example", args=[first.pk]),
        {"version": 1, "intent": "save_next", "queue": "draft", "prompt": first.prompt, "response": "Done."},
    )
    assert response["Location"] == f"{editor_url(second, 'draft')}&saved={first.pk}"
    assert list(ExampleLease.objects.values_list("example_id", "user__username")) == [(second.pk, "annie")]


def test_submitting_in_the_queue_moves_on_and_the_queue_ends_politely(client, dataset, annotator):
    only = ExampleFactory(dataset=dataset)
    client.force_login(annotator)
    next_from(client, dataset, "draft")
    page = client.post(
        reverse("example", args=[only.pk]),
        {"version": 1, "intent": "submit", "queue": "draft", "prompt": only.prompt, "response": only.response},
        follow=True,
    )
    assert page.redirect_chain[-1][0].startswith(reverse("dataset", args=[dataset.pk]))
    assert "That was the last one in this queue for now." in page.content.decode()
    assert not ExampleLease.objects.exists()


def test_skipping_moves_past_the_current_pair(dataset, annotator):
    first, second = ExampleFactory(dataset=dataset), ExampleFactory(dataset=dataset)
    assert example_lease_next(dataset=dataset, user=annotator, queue="draft") == first
    assert example_lease_next(dataset=dataset, user=annotator, queue="draft", after_id=first.pk) == second
    # only the pair in hand is held; wrapping round comes back to the first
    assert list(ExampleLease.objects.values_list("example_id", flat=True)) == [second.pk]
    assert example_lease_next(dataset=dataset, user=annotator, queue="draft", after_id=second.pk) == first


def test_an_empty_queue_says_so(client, dataset, lead):
    ExampleFactory(dataset=dataset, status="draft")
    client.force_login(lead)
    page = client.post(reverse("dataset-queue", args=[dataset.pk, "review"]), follow=True)
    assert page.redirect_chain == [(reverse("dataset", args=[dataset.pk]), 302)]
    assert "No pairs waiting for review in Guardrails right now." in page.content.decode()


def test_annotators_cannot_take_the_review_queue(client, dataset, annotator):
    ExampleFactory(dataset=dataset, status="submitted")
    client.force_login(annotator)
    assert client.post(reverse("dataset-queue", args=[dataset.pk, "review"])).status_code == 403
    assert not ExampleLease.objects.exists()


def test_unknown_queue_is_404(client, dataset, annotator):
    client.force_login(annotator)
    assert client.post(reverse("dataset-queue", args=[dataset.pk, "everything"])).status_code == 404


def test_editor_warns_when_someone_else_holds_the_pair(client, dataset, annotator, lead):
    pair = ExampleFactory(dataset=dataset, status="submitted")
    example_lease_next(dataset=dataset, user=lead, queue="review")
    client.force_login(annotator)
    page = client.get(reverse("example", args=[pair.pk])).content.decode()
    assert "leo got this pair from a work queue" in page


def test_the_editor_keeps_its_lease_alive(client, dataset, annotator):
    pair = ExampleFactory(dataset=dataset)
    example_lease_next(dataset=dataset, user=annotator, queue="draft")
    ExampleLease.objects.update(expires_at=timezone.now() + timedelta(seconds=5))
    client.force_login(annotator)
    assert client.post(reverse("example-lease", args=[pair.pk])).json() == {"held": True}
    assert ExampleLease.objects.get().expires_at > timezone.now() + timedelta(minutes=9)


@pytest.mark.django_db(transaction=True)
def test_racing_requests_never_get_the_same_pair(dataset, workspace):
    pairs = [ExampleFactory(dataset=dataset, status="submitted") for _ in range(4)]
    leads = [_member(workspace, f"lead{n}", "lead") for n in range(4)]
    start, got, errors = threading.Barrier(len(leads)), {}, []

    def claim(user):
        try:
            start.wait()
            got[user.username] = example_lease_next(dataset=dataset, user=user, queue="review")
        except Exception as error:  # reported below: a thread's exception would otherwise vanish
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=claim, args=(user,)) for user in leads]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    handed_out = [example.pk for example in got.values() if example is not None]
    assert sorted(handed_out) == sorted(p.pk for p in pairs)
    assert ExampleLease.objects.count() == 4
