"""Pairs an import is still writing on SQLite (an ImportStage's ids) are skipped by every read until it is done;
a rejected import leaves nothing behind, hidden or not."""

import io
import json

import pytest
from django.contrib import admin
from django.db import connection
from django.http import Http404
from django.test import RequestFactory

from datasets_app.curation.exports import dataset_export
from datasets_app.curation.search import search_examples
from datasets_app.curation.selectors import dataset_list_with_counts, example_get, example_status_counts
from datasets_app.curation.services import example_create, example_set_status
from datasets_app.imports.services import ImportRejected, dataset_import
from datasets_app.lint.report import dataset_lint_report
from datasets_app.models import Example, ImportStage
from tests.api_client import client_for
from training_app.snapshots import snapshot_create

pytestmark = pytest.mark.django_db
staged_only = pytest.mark.skipif(
    connection.vendor != "sqlite", reason="PostgreSQL imports in one transaction; nothing is staged"
)


@pytest.fixture
def half_staged(dataset, lead):
    """Six approved pairs, the last three (the only ones about walruses) inside a staged import's id range."""
    pairs = []
    for n in range(6):
        about = "walrus" if n >= 3 else "seal"
        pair = example_create(dataset=dataset, user=lead, prompt=f"What does a {about} eat? ({n})", response="Fish.")
        pairs.append(example_set_status(example=pair, user=lead, action="approve"))
    ImportStage.objects.create(dataset=dataset, first_id=pairs[3].pk, last_id=pairs[5].pk)
    return pairs


@staged_only
def test_every_read_skips_the_pairs_of_an_unfinished_import(half_staged, dataset, lead):
    shown = [pair.pk for pair in half_staged[:3]]
    assert list(dataset.examples.values_list("id", flat=True)) == shown
    assert Example.objects.filter(dataset=dataset).count() == 3
    assert example_status_counts(datasets=[dataset])[dataset.pk]["total"] == 3
    assert dataset_list_with_counts(user=lead).get(pk=dataset.pk).n_total == 3
    assert search_examples(dataset.examples.all(), "walrus").count() == 0
    with pytest.raises(Http404):
        example_get(user=lead, pk=half_staged[4].pk)
    assert b"".join(dataset_export(dataset=dataset, fmt="pairs")).count(b"\n") == 3
    snapshot = snapshot_create(dataset=dataset, user=lead, validation_fraction=0.34)
    assert snapshot.n_train + snapshot.n_validation == 3
    assert dataset_lint_report(dataset=dataset).checked == 3
    request = RequestFactory().get("/admin/")
    request.user = type(lead).objects.create_superuser("root", password="pw-for-tests-1")
    assert admin.site._registry[Example].get_queryset(request).count() == 3
    api = client_for(lead).get(f"/api/datasets/{dataset.pk}/examples/").json()
    assert [row["id"] for row in api["results"]] == shown
    # the hidden rows are there all along, for deletes and cascades
    assert Example._base_manager.filter(dataset=dataset).count() == 6


@staged_only
def test_the_pairs_show_once_the_import_is_done(half_staged, dataset):
    ImportStage.objects.all().delete()
    assert dataset.examples.count() == 6
    assert search_examples(dataset.examples.all(), "walrus").count() == 3


def test_a_rejected_import_leaves_no_hidden_rows_and_no_stage(dataset, annotator):
    lines = [json.dumps({"prompt": f"Q{n}?", "response": f"A{n}."}) for n in range(10)]
    lines.append(json.dumps({"prompt": "No answer?"}))
    with pytest.raises(ImportRejected):
        dataset_import(
            dataset=dataset, user=annotator, stream=io.BytesIO("\n".join(lines).encode()), filename="p.jsonl"
        )
    assert Example._base_manager.filter(dataset=dataset).count() == 0
    assert not ImportStage.objects.exists()


@staged_only
def test_an_import_skips_duplicates_of_the_dataset_and_of_itself_but_not_of_another_unfinished_import(
    half_staged, dataset, lead
):
    lines = [
        {"prompt": "What does a seal eat? (0)", "response": "Fish."},  # the dataset has it
        {"prompt": "What does a walrus eat? (3)", "response": "Fish."},  # only a staged import has it: it may fail
        {"prompt": "New?", "response": "Yes."},
        {"prompt": "new? ", "response": "yes."},  # the same as the line before, but for case and spacing
    ]
    stream = io.BytesIO("\n".join(json.dumps(line) for line in lines).encode())

    outcome = dataset_import(dataset=dataset, user=lead, stream=stream, filename="p.jsonl")

    assert (outcome.created, outcome.skipped_duplicates) == (2, 2)
    assert dataset.examples.filter(source="import:p.jsonl").count() == 2
    assert list(ImportStage.objects.values_list("first_id", flat=True)) == [half_staged[3].pk]
