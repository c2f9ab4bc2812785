"""The evaluation set in the browser: bulk moves, both counts and the filter, importing into it, the setting."""

import re

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from datasets_app.curation.services import example_create
from datasets_app.models import Example, ExampleStatus

pytestmark = pytest.mark.django_db


def bulk(client, dataset, action, examples):
    selected = [f"{example.pk}:{example.version}" for example in examples]
    return client.post(
        reverse("dataset-bulk", args=[dataset.pk]), {"action": action, "selected": selected}, follow=True
    )


@pytest.fixture
def pairs(dataset, annotator):
    return [example_create(dataset=dataset, user=annotator, prompt=f"Question {n}?", response="A.") for n in range(3)]


def test_an_annotator_moves_pairs_to_the_evaluation_set_and_back(client, dataset, annotator, pairs):
    client.force_login(annotator)
    page = bulk(client, dataset, "move_eval", pairs[:2]).content.decode()
    assert "2 pairs moved to the evaluation set." in page
    assert [e.split for e in Example.objects.order_by("id")] == ["eval", "eval", "train"]
    moved = Example.objects.get(pk=pairs[0].pk)
    assert moved.version == 2
    assert moved.revisions.order_by("-version").first().action == "split"
    again = bulk(client, dataset, "move_eval", [moved, pairs[2]]).content.decode()
    assert "1 pair moved to the evaluation set." in again
    assert f"#{moved.pk}: already in the evaluation set" in again
    back = bulk(client, dataset, "move_train", list(Example.objects.order_by("id"))).content.decode()
    assert "3 pairs moved to the training set." in back
    assert set(Example.objects.values_list("split", flat=True)) == {"train"}


def test_a_bulk_move_skips_a_pair_changed_since_the_page_was_loaded(client, dataset, annotator, pairs):
    client.force_login(annotator)
    stale = bulk(client, dataset, "move_eval", [pairs[0]])  # version 1 is now stale
    assert stale.status_code == 200
    page = bulk(client, dataset, "move_train", [pairs[0]]).content.decode()
    assert "changed since you loaded the page" in page
    assert Example.objects.get(pk=pairs[0].pk).split == "eval"


def test_outsiders_cannot_move_pairs(client, dataset, outsider, pairs):
    client.force_login(outsider)
    assert bulk(client, dataset, "move_eval", pairs).status_code == 404
    assert not Example.objects.filter(split="eval").exists()


def test_the_dataset_page_shows_both_sets_counts_and_filters_by_set(client, dataset, annotator, pairs):
    example_create(dataset=dataset, user=annotator, prompt="Held out?", response="A.", split="eval")
    client.force_login(annotator)
    page = client.get(reverse("dataset", args=[dataset.pk])).content.decode()
    counts = dict(re.findall(r'data-split="(\w+)">[^<]*<span class="count">(\d+)</span>', page))
    assert counts == {"all": "4", "train": "3", "eval": "1"}
    assert "Move to evaluation set" in page
    held_out = client.get(reverse("dataset", args=[dataset.pk]), {"split": "eval"}).content.decode()
    assert "Held out?" in held_out
    assert "Question 0?" not in held_out
    assert 'name="split" value="eval"' in held_out  # the search form keeps the set


def test_the_import_form_imports_into_the_evaluation_set(client, dataset, annotator):
    client.force_login(annotator)
    upload = SimpleUploadedFile("eval.jsonl", b'{"prompt": "Held out?", "response": "A."}\n')
    response = client.post(reverse("dataset-import", args=[dataset.pk]), {"file": upload, "split": "eval"})
    assert response.status_code == 200
    assert "Imported 1 pair" in response.content.decode()
    assert dataset.examples.get().split == "eval"


def test_history_shows_the_move(client, dataset, annotator, pairs):
    client.force_login(annotator)
    bulk(client, dataset, "move_eval", [pairs[0]])
    page = client.get(reverse("example-history", args=[pairs[0].pk])).content.decode()
    assert "Moved by annie" in page
    assert "<del>Training set</del> → <ins>Evaluation set</ins>" in page


def test_leads_refuse_eval_overlap_in_the_checks(client, dataset, lead, annotator):
    client.force_login(annotator)
    assert client.get(reverse("dataset-settings", args=[dataset.pk])).status_code == 403
    client.force_login(lead)
    assert "refuse_eval_overlap" in client.get(reverse("dataset-settings", args=[dataset.pk])).content.decode()
    response = client.post(reverse("dataset-settings", args=[dataset.pk]), {"refuse_eval_overlap": "on"})
    assert response.status_code == 302
    dataset.refresh_from_db()
    assert (dataset.refuse_eval_overlap, dataset.require_valid) == (True, False)


def test_approved_pairs_keep_their_status_when_moved_in_bulk(client, dataset, lead, annotator):
    approved = example_create(dataset=dataset, user=lead, prompt="Q?", response="A.", status=ExampleStatus.APPROVED)
    client.force_login(annotator)
    bulk(client, dataset, "move_eval", [approved])
    approved.refresh_from_db()
    assert (approved.split, approved.status) == ("eval", "approved")
