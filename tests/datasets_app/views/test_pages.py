"""The home and dataset pages: counts, keyset pages, filters, search, bulk actions, and who may see what."""

import re

import pytest
from django.urls import reverse

from datasets_app.curation.services import example_create, example_update
from datasets_app.models import Example, ExampleStatus
from tests.factories import DatasetFactory, ExampleFactory

pytestmark = pytest.mark.django_db


def page_of(client, dataset, **params):
    response = client.get(reverse("dataset", args=[dataset.pk]), params)
    assert response.status_code == 200
    return response.content.decode()


def row_ids(html):
    """The pair ids of the table rows, in order."""
    return [int(pk) for pk in re.findall(r'name="selected" value="(\d+):\d+"', html)]


def test_home_shows_counts_by_status_and_approved_progress(client, dataset, annotator):
    for status in ["draft", "draft", "submitted", "approved"]:
        ExampleFactory(dataset=dataset, status=status)
    client.force_login(annotator)
    page = client.get(reverse("home")).content.decode()
    assert reverse("dataset", args=[dataset.pk]) in page
    assert 'max="4" value="1"' in page  # the progress bar: approved of all
    assert "1/4" in page


def test_home_offers_the_review_queue_to_leads_only(client, dataset, annotator, lead):
    review = reverse("dataset-queue", args=[dataset.pk, "review"])
    client.force_login(annotator)
    assert review not in client.get(reverse("home")).content.decode()
    client.force_login(lead)
    assert review in client.get(reverse("home")).content.decode()


def test_dataset_page_lists_previews_status_tags_and_author(client, dataset, annotator):
    example_create(
        dataset=dataset,
        user=annotator,
        prompt="How do I boil an egg?",
        response="Gently, for nine minutes.",
        tags=["eggs"],
    )
    client.force_login(annotator)
    page = page_of(client, dataset)
    assert "How do I boil an egg?" in page
    assert "Gently, for nine minutes." in page
    assert '<span class="tag">eggs</span>' in page
    assert "annie" in page
    assert 'class="badge status-draft">Draft<' in page


def test_counts_by_status_come_from_one_grouped_query(client, dataset, annotator, django_assert_max_num_queries):
    for status in ["draft", "submitted", "submitted", "approved", "rejected"]:
        ExampleFactory(dataset=dataset, status=status)
    client.force_login(annotator)
    with django_assert_max_num_queries(9):
        page = page_of(client, dataset)
    counts = dict(re.findall(r'>(All|Draft|Submitted|Approved|Rejected) <span class="count">(\d+)</span>', page))
    assert counts == {"All": "5", "Draft": "1", "Submitted": "2", "Approved": "1", "Rejected": "1"}


def test_pages_of_fifty_follow_ids_forward_and_back(client, dataset, annotator):
    ids = [ExampleFactory(dataset=dataset).pk for _ in range(120)]
    client.force_login(annotator)
    first = page_of(client, dataset)
    assert row_ids(first) == ids[:50]
    assert "?before=" not in first
    second = page_of(client, dataset, after=ids[49])
    assert row_ids(second) == ids[50:100]
    third = page_of(client, dataset, after=ids[99])
    assert row_ids(third) == ids[100:]
    assert "after=" not in third.split('class="pager"')[1]  # no next page after the last
    back = page_of(client, dataset, before=ids[100])
    assert row_ids(back) == ids[50:100]
    # "previous" from the second page lands on the first page, whole
    assert row_ids(page_of(client, dataset, before=ids[50])) == ids[:50]


def test_next_link_keeps_the_filters(client, dataset, annotator):
    ids = [ExampleFactory(dataset=dataset, status="submitted").pk for _ in range(55)]
    client.force_login(annotator)
    page = page_of(client, dataset, status="submitted")
    assert f"?status=submitted&amp;after={ids[49]}" in page


def test_filters_by_status_tag_author_and_source(client, dataset, annotator, lead):
    mine = example_create(dataset=dataset, user=annotator, prompt="Mine?", response="Yes.", tags=["billing"])
    theirs = example_create(dataset=dataset, user=lead, prompt="Theirs?", response="No.", source="import:a.jsonl")
    submitted = ExampleFactory(dataset=dataset, status="submitted")
    client.force_login(annotator)
    assert row_ids(page_of(client, dataset, status="submitted")) == [submitted.pk]
    assert row_ids(page_of(client, dataset, tag="billing")) == [mine.pk]
    assert row_ids(page_of(client, dataset, author="leo")) == [theirs.pk]
    assert row_ids(page_of(client, dataset, source="import:*")) == [theirs.pk]
    assert row_ids(page_of(client, dataset, status="bogus")) == [mine.pk, theirs.pk, submitted.pk]


def test_search_finds_words_in_prompt_or_response(client, dataset, annotator):
    soup = ExampleFactory(
        dataset=dataset, prompt="How long should lentil soup simmer?", response="About thirty minutes."
    )
    bread = ExampleFactory(dataset=dataset, prompt="Why is my bread dense?", response="Knead it longer; the soup of")
    ExampleFactory(dataset=dataset, prompt="Unrelated", response="Nothing here.")
    client.force_login(annotator)
    assert row_ids(page_of(client, dataset, q="lentil")) == [soup.pk]
    assert row_ids(page_of(client, dataset, q="soup")) == [soup.pk, bread.pk]
    assert row_ids(page_of(client, dataset, q="thirty minutes")) == [soup.pk]
    assert "No pairs match these filters." in page_of(client, dataset, q="zebra")


def test_live_search_gets_only_the_table(client, dataset, annotator):
    ExampleFactory(dataset=dataset, prompt="Lentil soup?", response="Yes.")
    client.force_login(annotator)
    response = client.get(
        reverse("dataset", args=[dataset.pk]), {"q": "lentil"}, HTTP_HX_REQUEST="true", HTTP_HX_TARGET="examples"
    )
    body = response.content.decode()
    assert "Lentil soup?" in body
    assert "<html" not in body
    assert 'class="pager"' in body


def test_a_huge_page_id_is_ignored_not_a_database_error(client, dataset, annotator):
    ExampleFactory(dataset=dataset)
    client.force_login(annotator)
    assert len(row_ids(page_of(client, dataset, after="9" * 40))) == 1


# --- bulk actions


def selection(*examples):
    return [f"{example.pk}:{example.version}" for example in examples]


def bulk(client, dataset, action, examples, **extra):
    return client.post(
        reverse("dataset-bulk", args=[dataset.pk]),
        {"action": action, "selected": selection(*examples), **extra},
        follow=True,
    )


def test_bulk_submit_reports_changed_and_skipped(client, dataset, annotator):
    drafts = [ExampleFactory(dataset=dataset) for _ in range(3)]
    already = ExampleFactory(dataset=dataset, status="submitted")
    client.force_login(annotator)
    page = bulk(client, dataset, "submit", [*drafts, already]).content.decode()
    assert "3 pairs submitted." in page
    assert f"1 skipped (#{already.pk}: already submitted)" in page
    assert Example.objects.filter(status="submitted").count() == 4


def test_bulk_skips_a_pair_changed_since_the_page_was_loaded(client, dataset, annotator, lead):
    example = example_create(dataset=dataset, user=annotator, prompt="Q?", response="A.")
    loaded = selection(example)
    example_update(example=example, user=lead, expected_version=1, response="A better answer.")
    client.force_login(lead)
    page = client.post(
        reverse("dataset-bulk", args=[dataset.pk]), {"action": "approve", "selected": loaded}, follow=True
    ).content.decode()
    assert "0 pairs approved." in page
    assert "changed since you loaded the page" in page
    assert Example.objects.get(pk=example.pk).status == ExampleStatus.DRAFT


def test_bulk_approve_and_reject_with_comment_by_a_lead(client, dataset, lead):
    good, bad = ExampleFactory(dataset=dataset, status="submitted"), ExampleFactory(dataset=dataset, status="submitted")
    client.force_login(lead)
    assert "1 pair approved." in bulk(client, dataset, "approve", [good]).content.decode()
    assert "a rejection needs a comment" in bulk(client, dataset, "reject", [bad]).content.decode().lower()
    assert Example.objects.get(pk=bad.pk).status == "submitted"
    assert "1 pair rejected." in bulk(client, dataset, "reject", [bad], comment="Too vague.").content.decode()
    bad.refresh_from_db()
    assert (bad.status, bad.review_comment) == ("rejected", "Too vague.")
    assert Example.objects.get(pk=good.pk).status == "approved"


def test_bulk_tags_are_added_and_removed(client, dataset, annotator):
    examples = [ExampleFactory(dataset=dataset, tags=["old"]) for _ in range(2)]
    client.force_login(annotator)
    assert "2 pairs tagged." in bulk(client, dataset, "add_tag", examples, tag="urgent").content.decode()
    assert [e.tags for e in Example.objects.order_by("id")] == [["old", "urgent"], ["old", "urgent"]]
    fresh = list(Example.objects.order_by("id"))
    assert "2 pairs untagged." in bulk(client, dataset, "remove_tag", fresh, tag="old").content.decode()
    assert [e.tags for e in Example.objects.order_by("id")] == [["urgent"], ["urgent"]]
    assert Example.objects.first().revisions.count() == 2  # each change is a revision, as in the editor


def test_bulk_delete_asks_for_confirmation_first(client, dataset, lead):
    doomed = [ExampleFactory(dataset=dataset, prompt=f"Doomed {n}") for n in range(2)]
    client.force_login(lead)
    confirm = client.post(
        reverse("dataset-bulk", args=[dataset.pk]), {"action": "delete", "selected": selection(*doomed)}
    )
    assert confirm.status_code == 200
    assert "Delete 2 pairs?" in confirm.content.decode()
    assert Example.objects.count() == 2
    done = bulk(client, dataset, "delete", doomed, confirm="1")
    assert "2 pairs deleted." in done.content.decode()
    assert Example.objects.count() == 0


@pytest.mark.parametrize("action", ["approve", "reject", "delete"])
def test_annotator_cannot_run_lead_bulk_actions(client, dataset, annotator, action):
    example = ExampleFactory(dataset=dataset, status="submitted")
    client.force_login(annotator)
    response = client.post(
        reverse("dataset-bulk", args=[dataset.pk]),
        {"action": action, "selected": selection(example), "comment": "no", "confirm": "1"},
    )
    assert response.status_code == 403
    example.refresh_from_db()
    assert example.status == "submitted"


def test_bulk_without_a_selection_changes_nothing(client, dataset, annotator):
    ExampleFactory(dataset=dataset)
    client.force_login(annotator)
    page = client.post(reverse("dataset-bulk", args=[dataset.pk]), {"action": "submit"}, follow=True)
    assert "Select at least one pair first." in page.content.decode()


def test_bulk_ignores_pairs_of_other_datasets(client, dataset, annotator, workspace):
    elsewhere = ExampleFactory(dataset=DatasetFactory(workspace=workspace, name="Other"))
    client.force_login(annotator)
    page = bulk(client, dataset, "submit", [elsewhere]).content.decode()
    assert f"#{elsewhere.pk}: no longer exists" in page
    assert Example.objects.get(pk=elsewhere.pk).status == "draft"


def test_bulk_redirects_back_to_the_list_it_came_from_only_within_the_site(client, dataset, annotator):
    example = ExampleFactory(dataset=dataset)
    client.force_login(annotator)
    url = reverse("dataset-bulk", args=[dataset.pk])
    back = f"{reverse('dataset', args=[dataset.pk])}?status=draft"
    response = client.post(url, {"action": "add_tag", "tag": "x", "selected": selection(example), "next": back})
    assert response["Location"] == back
    response = client.post(url, {"action": "add_tag", "tag": "y", "selected": "", "next": "https://evil.example/"})
    assert response["Location"] == reverse("dataset", args=[dataset.pk])
