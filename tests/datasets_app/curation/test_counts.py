"""Counts by status of huge datasets: kept in the cache every process shares, and counted afresh after every write
that changes them, whether it came from a page, the API or a worker.

Each test first shows that the counts really come from the cache (a row written behind the services' back is not
counted), then makes a write the way a user would and checks that the next count has it.
"""

import io
import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from datasets_app.blueprints.services import template_generate_now
from datasets_app.blueprints.specs import default_spec
from datasets_app.curation.queues import examples_bulk_action
from datasets_app.curation.selectors import dataset_status_counts
from datasets_app.curation.services import (
    dataset_delete,
    example_create,
    example_delete,
    example_set_status,
    example_update,
    examples_bulk_create,
)
from datasets_app.imports.services import dataset_import
from datasets_app.models import Example, Template
from tests.api_client import client_for
from tests.factories import ExampleFactory
from tests.worker import wait_for

# transaction=True: the counts are forgotten when a write commits, as in production
pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def huge(settings):
    settings.COUNTS_CACHE_MIN_PAIRS = 3  # so a dataset of a few pairs has its counts cached


def shown(dataset) -> dict:
    return dataset_status_counts(datasets=[dataset])[dataset.pk]


def cached_counts(dataset) -> dict:
    """The counts a page shows now, after checking that they are the cached ones."""
    counts = shown(dataset)
    assert counts["as_of"] is not None
    ExampleFactory(dataset=dataset)  # behind the services' back: not counted while the cache holds
    assert shown(dataset) == counts
    return counts


def jsonl(records) -> bytes:
    return "\n".join(json.dumps(record) for record in records).encode()


def test_an_ordinary_dataset_is_counted_on_every_view(dataset, settings):
    settings.COUNTS_CACHE_MIN_PAIRS = 100
    ExampleFactory(dataset=dataset)
    assert shown(dataset)["as_of"] is None
    ExampleFactory(dataset=dataset)
    assert shown(dataset)["total"] == 2


def test_writes_through_the_api_are_counted_at_once(dataset, annotator, lead):
    for _ in range(3):
        ExampleFactory(dataset=dataset)
    api, review = client_for(annotator), client_for(lead)

    total = cached_counts(dataset)["total"]
    created = api.post(f"/api/datasets/{dataset.pk}/examples/", {"prompt": "New?", "response": "Yes."}, format="json")
    assert created.status_code == 201
    assert shown(dataset)["total"] == total + 2  # the new pair, and the one written behind the cache's back

    total = cached_counts(dataset)["total"]
    items = [{"prompt": f"Listed {n}?", "response": "Yes."} for n in range(2)]
    assert api.post(f"/api/datasets/{dataset.pk}/examples/", items, format="json").status_code == 201
    assert shown(dataset)["total"] == total + 3

    pair = created.json()["id"]
    cached_counts(dataset)
    assert api.post(f"/api/examples/{pair}/status/", {"action": "submit"}, format="json").status_code == 200
    assert shown(dataset)["submitted"] == 1

    cached_counts(dataset)
    assert review.post(f"/api/examples/{pair}/status/", {"action": "approve"}, format="json").status_code == 200
    assert (shown(dataset)["submitted"], shown(dataset)["approved"]) == (0, 1)

    cached_counts(dataset)  # an annotator's edit sends an approved pair back to review
    version = Example.objects.get(pk=pair).version
    edited = api.patch(f"/api/examples/{pair}/", {"response": "Yes!"}, format="json", HTTP_IF_MATCH=f'"{version}"')
    assert edited.status_code == 200
    assert (shown(dataset)["submitted"], shown(dataset)["approved"]) == (1, 0)

    total = cached_counts(dataset)["total"]
    assert review.delete(f"/api/examples/{pair}/").status_code == 204
    assert shown(dataset)["total"] == total  # one deleted, one written behind the cache's back

    total = cached_counts(dataset)["total"]
    upload = SimpleUploadedFile("small.jsonl", jsonl([{"prompt": "Imported?", "response": "Yes."}]))
    assert api.post(f"/api/datasets/{dataset.pk}/import/", {"file": upload}, format="multipart").status_code == 201
    assert shown(dataset)["total"] == total + 2


@pytest.mark.worker
def test_writes_by_a_worker_are_counted_at_once(celery_worker, dataset, lead, settings):
    settings.IMPORT_ASYNC_BYTES = 100
    settings.GENERATE_SYNC_MAX = 1
    for _ in range(3):
        ExampleFactory(dataset=dataset)
    api = client_for(lead)

    total = cached_counts(dataset)["total"]
    records = [{"prompt": f"Imported {n}?", "response": f"Answer {n}."} for n in range(20)]
    upload = SimpleUploadedFile("big.jsonl", jsonl(records))
    started = api.post(f"/api/datasets/{dataset.pk}/import/", {"file": upload}, format="multipart")
    assert started.status_code == 202, started.content
    job = wait_for(lambda: (body := api.get(started.json()["url"]).json())["status"] == "succeeded" and body, 120)
    assert job["result"]["created"] == 20
    assert shown(dataset)["total"] == total + 21

    total = cached_counts(dataset)["total"]
    template = Template.objects.create(workspace=dataset.workspace, name="MCQ", kind="mcq", spec=default_spec("mcq"))
    started = api.post(f"/api/templates/{template.pk}/generate/", {"dataset": dataset.pk}, format="json")
    assert started.status_code == 202, started.content
    url = f"/api/jobs/{started.json()['id']}/"
    job = wait_for(lambda: (body := api.get(url).json())["status"] == "succeeded" and body, 120)
    assert job["result"]["created"] > 1
    assert shown(dataset)["total"] == total + 1 + job["result"]["created"]


def test_every_service_that_changes_the_counts_forgets_them(dataset, annotator, lead):
    """The write paths the HTML views, the API and the workers share."""
    for _ in range(3):
        ExampleFactory(dataset=dataset)
    pair = example_create(dataset=dataset, user=annotator, prompt="First?", response="Yes.")
    template = Template.objects.create(workspace=dataset.workspace, name="MCQ", kind="mcq", spec=default_spec("mcq"))
    writes = [
        lambda: example_create(dataset=dataset, user=annotator, prompt="Another?", response="Yes."),
        lambda: examples_bulk_create(dataset=dataset, user=annotator, items=[{"prompt": "Bulk?", "response": "Y."}]),
        lambda: example_set_status(example=pair, user=annotator, action="submit"),
        lambda: examples_bulk_action(dataset=dataset, user=lead, versions={pair.pk: 2}, action="approve"),
        lambda: example_update(example=pair, user=annotator, expected_version=3, response="Changed."),  # to review
        lambda: dataset_import(
            dataset=dataset, user=annotator, stream=_file([{"prompt": "Imp?", "response": "Y."}]), filename="a.jsonl"
        ),
        lambda: template_generate_now(template=template, dataset=dataset, user=lead),
        lambda: example_delete(example=pair, user=lead),
    ]
    for write in writes:
        cached_counts(dataset)
        write()
        assert shown(dataset)["total"] == dataset.examples.count()
        assert shown(dataset)["submitted"] == dataset.examples.filter(status="submitted").count()
        assert shown(dataset)["approved"] == dataset.examples.filter(status="approved").count()

    cached_counts(dataset)
    dataset_delete(dataset=dataset, user=lead)
    assert shown(dataset)["total"] == 0


def _file(records) -> io.BytesIO:
    return io.BytesIO(jsonl(records))
