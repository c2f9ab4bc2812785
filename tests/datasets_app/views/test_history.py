"""History with word-level diffs and restoring; the import page and the import job page."""

import json
import re

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from datasets_app.curation.services import example_create, example_set_status, example_update
from datasets_app.models import Example, ExampleRevision, Job
from tests.factories import ExampleFactory
from tests.worker import wait_for

pytestmark = pytest.mark.django_db


def history_of(client, example):
    response = client.get(reverse("example-history", args=[example.pk]))
    assert response.status_code == 200
    return response.content.decode()


def test_history_lists_every_version_newest_first_with_word_diffs(client, dataset, annotator, lead):
    pair = example_create(dataset=dataset, user=annotator, prompt="Boil the pasta.", response="Ten minutes in water.")
    example_update(example=pair, user=annotator, expected_version=1, response="Nine minutes in salted water.")
    example_set_status(example=pair, user=annotator, action="submit")
    client.force_login(lead)
    page = history_of(client, pair)
    versions = [int(v) for v in re.findall(r'class="card revision" data-version="(\d+)"', page)]
    assert versions == [3, 2, 1]
    assert "<del>Ten</del><ins>Nine</ins>" in page
    assert "<ins>salted </ins>" in page
    assert "<del>draft</del> → <ins>submitted</ins>" in page
    assert "Created by annie" in page


def test_imported_pair_without_a_create_revision_shows_its_creation(client, dataset, annotator):
    imported = ExampleFactory(dataset=dataset, source="import:kitchen.jsonl", created_by=annotator)
    example_update(example=imported, user=annotator, expected_version=1, response="Edited after import.")
    client.force_login(annotator)
    page = history_of(client, imported)
    assert "Version 1</strong> · Created by annie" in page
    assert "from import:kitchen.jsonl" in page
    assert "Version 2</strong> · Edited by annie" in page


def test_restoring_an_old_version_makes_a_new_one(client, dataset, annotator):
    pair = example_create(dataset=dataset, user=annotator, prompt="Q?", response="First answer.")
    example_update(example=pair, user=annotator, expected_version=1, response="Second answer.")
    client.force_login(annotator)
    response = client.post(reverse("example-restore", args=[pair.pk]), {"version": 1, "expected_version": 2})
    assert response["Location"] == f"{reverse('example', args=[pair.pk])}?saved={pair.pk}"
    pair.refresh_from_db()
    assert (pair.response, pair.version) == ("First answer.", 3)
    assert pair.revisions.last().action == ExampleRevision.Action.RESTORE
    assert "Restored" in history_of(client, pair)


def test_restoring_version_one_of_an_imported_pair(client, dataset, annotator):
    imported = ExampleFactory(dataset=dataset, response="As imported.")
    example_update(example=imported, user=annotator, expected_version=1, response="Changed.", tags=["x"])
    client.force_login(annotator)
    client.post(reverse("example-restore", args=[imported.pk]), {"version": 1, "expected_version": 2})
    imported.refresh_from_db()
    assert (imported.response, imported.tags, imported.version) == ("As imported.", [], 3)


def test_a_stale_restore_is_refused(client, dataset, annotator, lead):
    pair = example_create(dataset=dataset, user=annotator, prompt="Q?", response="One.")
    example_update(example=pair, user=annotator, expected_version=1, response="Two.")
    example_update(example=pair, user=lead, expected_version=2, response="Three.")
    client.force_login(annotator)
    page = client.post(
        reverse("example-restore", args=[pair.pk]), {"version": 1, "expected_version": 2}, follow=True
    ).content.decode()
    assert "Someone changed this pair while you were reading its history" in page
    assert Example.objects.get(pk=pair.pk).response == "Three."


def test_restoring_a_version_that_does_not_exist_is_404(client, dataset, annotator):
    pair = example_create(dataset=dataset, user=annotator, prompt="Q?", response="One.")
    client.force_login(annotator)
    assert (
        client.post(reverse("example-restore", args=[pair.pk]), {"version": 7, "expected_version": 1}).status_code
        == 404
    )


# --- import


def upload(name, records):
    return SimpleUploadedFile(name, "\n".join(json.dumps(record) for record in records).encode())


def test_import_shows_the_detected_format_and_result(client, dataset, annotator):
    client.force_login(annotator)
    records = [{"instruction": f"Question {n}?", "output": f"Answer {n}."} for n in range(3)]
    response = client.post(reverse("dataset-import", args=[dataset.pk]), {"file": upload("alpaca.jsonl", records)})
    page = response.content.decode()
    assert response.status_code == 200
    assert "Imported 3 pairs" in page
    assert "detected format: <code>alpaca</code>" in page
    assert dataset.examples.count() == 3


def test_import_with_problems_lists_them_and_imports_nothing(client, dataset, annotator):
    client.force_login(annotator)
    records = [{"prompt": "Fine?", "response": "Yes."}, {"prompt": "Missing the response"}]
    response = client.post(reverse("dataset-import", args=[dataset.pk]), {"file": upload("bad.jsonl", records)})
    page = response.content.decode()
    assert response.status_code == 400
    assert "1 problem in bad.jsonl; nothing was imported" in page
    assert "line 2" in page
    assert "<code>response</code>" in page
    assert dataset.examples.count() == 0


def test_annotators_cannot_import_as_approved(client, dataset, annotator):
    client.force_login(annotator)
    page = client.get(reverse("dataset-import", args=[dataset.pk])).content.decode()
    assert 'value="approved"' not in page
    response = client.post(
        reverse("dataset-import", args=[dataset.pk]),
        {"file": upload("a.jsonl", [{"prompt": "Q?", "response": "A."}]), "status": "approved"},
    )
    assert response.status_code == 403
    assert dataset.examples.count() == 0


def test_a_large_file_becomes_a_job_with_a_progress_page(client, dataset, annotator, settings):
    settings.IMPORT_ASYNC_BYTES = 100
    client.force_login(annotator)
    records = [{"prompt": f"Question {n}?", "response": f"Answer {n}."} for n in range(20)]
    response = client.post(reverse("dataset-import", args=[dataset.pk]), {"file": upload("big.jsonl", records)})
    job = Job.objects.get()
    assert response["Location"] == reverse("job", args=[job.pk])
    page = client.get(response["Location"]).content.decode()
    assert 'hx-trigger="every 1s"' in page  # polls while the job runs
    assert "<progress" in page
    Job.objects.filter(pk=job.pk).update(
        status="failed", problems=[{"line": 3, "field": "prompt", "message": "is empty"}]
    )
    fragment = client.get(response["Location"], HTTP_HX_REQUEST="true").content.decode()
    assert "<html" not in fragment
    assert "every 1s" not in fragment  # finished: polling stops
    assert "line 3" in fragment
    assert "is empty" in fragment


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_worker_imports_the_large_file_and_the_job_page_shows_the_result(
    celery_worker, client, dataset, annotator, settings
):
    settings.IMPORT_ASYNC_BYTES = 1000
    client.force_login(annotator)
    records = [{"prompt": f"Question {n}?", "response": f"Answer {n}."} for n in range(500)]
    response = client.post(reverse("dataset-import", args=[dataset.pk]), {"file": upload("big.jsonl", records)})
    url = response["Location"]
    wait_for(lambda: Job.objects.get().finished, timeout=120)
    page = client.get(url, HTTP_HX_REQUEST="true").content.decode()
    assert "Imported 500 pairs" in page
    assert dataset.examples.count() == 500
