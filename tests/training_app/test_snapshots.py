import json

import pytest
from django.core.exceptions import ValidationError

from datasets_app.curation.services import example_update
from datasets_app.errors import NotAllowed
from tests.api_client import client_for
from training_app.snapshots import snapshot_create, snapshot_rows

pytestmark = pytest.mark.django_db


def test_snapshot_freezes_approved_pairs_with_a_seeded_stratified_split(guardrail_dataset, lead):
    snapshot = snapshot_create(dataset=guardrail_dataset, user=lead, validation_fraction=0.25, seed=7)
    rows = snapshot_rows(snapshot)
    assert (snapshot.number, snapshot.n_train, snapshot.n_validation) == (1, 8, 4)
    validation = [row for row in rows if row.split == "validation"]
    assert sorted(row.blocked for row in validation) == [False, False, True, True]
    again = snapshot_create(dataset=guardrail_dataset, user=lead, validation_fraction=0.25, seed=7)
    assert again.number == 2
    assert again.content_hash == snapshot.content_hash
    other_seed = snapshot_create(dataset=guardrail_dataset, user=lead, validation_fraction=0.25, seed=8)
    assert {r.ref for r in snapshot_rows(other_seed) if r.split == "validation"} != {r.ref for r in validation}


def test_later_edits_do_not_change_a_snapshot(guardrail_dataset, lead):
    snapshot = snapshot_create(dataset=guardrail_dataset, user=lead)
    before = snapshot_rows(snapshot)
    example = guardrail_dataset.examples.first()
    example_update(example=example, user=lead, expected_version=example.version, response="Changed afterwards.")
    assert snapshot_rows(snapshot) == before
    assert "Changed afterwards." not in [row.response for row in before]


def test_drafts_and_rejected_pairs_are_left_out(guardrail_dataset, lead, annotator):
    from datasets_app.curation.services import example_create

    example_create(dataset=guardrail_dataset, user=annotator, prompt="Unreviewed?", response="Draft.")
    snapshot = snapshot_create(dataset=guardrail_dataset, user=lead)
    assert snapshot.n_total == 12
    assert "Unreviewed?" not in [row.prompt for row in snapshot_rows(snapshot)]


def test_a_dataset_without_approved_pairs_cannot_be_snapshot(dataset, lead):
    with pytest.raises(ValidationError, match="at least 2 approved"):
        snapshot_create(dataset=dataset, user=lead)


def test_annotators_cannot_snapshot(guardrail_dataset, annotator):
    with pytest.raises(NotAllowed):
        snapshot_create(dataset=guardrail_dataset, user=annotator)


def test_snapshot_api_and_download(guardrail_dataset, lead, outsider):
    api = client_for(lead)
    created = api.post(f"/api/datasets/{guardrail_dataset.pk}/snapshots/", {"validation_fraction": 0.5}, format="json")
    assert created.status_code == 201
    body = created.json()
    assert (body["n_train"], body["n_validation"]) == (6, 6)
    assert api.get(f"/api/snapshots/{body['id']}/").json()["content_hash"] == body["content_hash"]
    download = api.get(body["download_url"])
    lines = [json.loads(line) for line in b"".join(download.streaming_content).decode().splitlines()]
    assert len(lines) == 12
    assert {line["split"] for line in lines} == {"train", "validation"}
    assert client_for(outsider).get(f"/api/snapshots/{body['id']}/").status_code == 404


def test_on_the_file_system_downloads_stream_even_with_the_redirect_setting(guardrail_dataset, lead, settings):
    # presigned URLs are an S3 feature (tests/test_s3_storage.py); files on disk have no URL to send anyone to
    settings.STORAGE_DOWNLOAD_REDIRECT = True
    snapshot = snapshot_create(dataset=guardrail_dataset, user=lead)
    download = client_for(lead).get(f"/api/snapshots/{snapshot.pk}/download/")
    assert download.status_code == 200
    assert download["Content-Disposition"] == f'attachment; filename="Medical guardrail-v{snapshot.number}.jsonl"'
    assert len(b"".join(download.streaming_content).decode().splitlines()) == 12
