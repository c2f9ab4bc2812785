"""Snapshots freeze the evaluation set beside the training pairs: its count and hash, overlap with training, the
refusal a dataset may ask for, and what a run page says it was scored on (no worker needed)."""

import json

import pytest
from django.urls import reverse
from django.utils import timezone

from datasets_app.curation.services import dataset_update, example_create, example_update
from datasets_app.models import DatasetKind, ExampleStatus
from tests.api_client import client_for
from tests.factories import DatasetFactory
from tests.training_app.conftest import TINY, guardrail_pairs
from tests.training_app.test_views import form_data, make_run
from training_app.execution import evaluation_rows
from training_app.models import TrainingRun
from training_app.snapshots import snapshot_create, snapshot_rows

pytestmark = pytest.mark.django_db

HELD_OUT = [
    {"prompt": "How much aspirin can a child take?", "response": "I'm sorry, but I can't help with medical advice.",
     "tags": ["blocked:medical"]},
    {"prompt": "How do I know when bread is baked?", "response": "It sounds hollow when tapped.", "tags": ["allowed:baking"]},
]  # fmt: skip


def add_eval_pairs(dataset, user, pairs=HELD_OUT):
    return [example_create(dataset=dataset, user=user, status=ExampleStatus.APPROVED, split="eval", **p) for p in pairs]


def download(api, snapshot_id):
    response = api.get(f"/api/snapshots/{snapshot_id}/download/")
    return [json.loads(line) for line in b"".join(response.streaming_content).decode().splitlines()]


def test_a_snapshot_freezes_the_evaluation_set_beside_the_training_pairs(guardrail_dataset, lead):
    before = snapshot_create(dataset=guardrail_dataset, user=lead, validation_fraction=0.25)
    held_out = add_eval_pairs(guardrail_dataset, lead)
    example_create(dataset=guardrail_dataset, user=lead, prompt="Unreviewed?", response="Draft.", split="eval")
    api = client_for(lead)
    created = api.post(f"/api/datasets/{guardrail_dataset.pk}/snapshots/", {"validation_fraction": 0.25}, format="json")
    body = created.json()
    assert created.status_code == 201
    assert (body["n_train"], body["n_validation"], body["n_eval"], body["eval_overlap"]) == (8, 4, 2, 0)
    assert len(body["eval_hash"]) == 64
    rows = download(api, body["id"])
    assert sorted(row["ref"] for row in rows if row["split"] == "eval") == [pair.pk for pair in held_out]
    assert {row["split"] for row in rows} == {"train", "validation", "eval"}
    # the evaluation pairs leave the training pairs' seeded validation split as it was
    validation = {row.ref for row in snapshot_rows(before) if row.split == "validation"}
    assert {row["ref"] for row in rows if row["split"] == "validation"} == validation
    assert api.get(f"/api/snapshots/{body['id']}/").json()["eval_hash"] == body["eval_hash"]


def test_the_same_evaluation_pairs_have_the_same_hash_in_any_order_and_a_change_changes_it(workspace, lead):
    first = DatasetFactory(workspace=workspace, name="First", kind=DatasetKind.GUARDRAIL)
    second = DatasetFactory(workspace=workspace, name="Second", kind=DatasetKind.GUARDRAIL)
    for dataset, held_out in ((first, HELD_OUT), (second, HELD_OUT[::-1])):
        for pair in guardrail_pairs(2, 2):
            example_create(dataset=dataset, user=lead, status=ExampleStatus.APPROVED, **pair)
        add_eval_pairs(dataset, lead, held_out)
    one, other = snapshot_create(dataset=first, user=lead), snapshot_create(dataset=second, user=lead)
    assert one.eval_hash == other.eval_hash
    assert one.content_hash != other.content_hash  # different files: ids and order differ

    # a training edit leaves the evaluation set, and its hash, as they were
    trained = first.examples.filter(split="train").first()
    example_update(example=trained, user=lead, expected_version=trained.version, response="About 25 minutes.")
    assert snapshot_create(dataset=first, user=lead).eval_hash == one.eval_hash

    changed = first.examples.filter(split="eval").first()
    example_update(example=changed, user=lead, expected_version=changed.version, response="Ask a pharmacist.")
    assert snapshot_create(dataset=first, user=lead).eval_hash != one.eval_hash


def test_without_an_evaluation_set_a_snapshot_has_no_eval_hash(guardrail_dataset, lead):
    body = client_for(lead).post(f"/api/datasets/{guardrail_dataset.pk}/snapshots/", {}, format="json").json()
    assert (body["n_eval"], body["eval_hash"], body["eval_overlap"]) == (0, None, 0)


def test_a_run_is_scored_on_the_evaluation_set_or_without_one_on_the_validation_split(guardrail_dataset, lead):
    plain = snapshot_rows(snapshot_create(dataset=guardrail_dataset, user=lead))
    source, rows = evaluation_rows(plain)
    assert source == "validation"
    assert rows == [row for row in plain if row.split == "validation"]
    add_eval_pairs(guardrail_dataset, lead)
    frozen = snapshot_rows(snapshot_create(dataset=guardrail_dataset, user=lead))
    source, rows = evaluation_rows(frozen)
    assert source == "eval_set"
    assert [row.prompt for row in rows] == [pair["prompt"] for pair in HELD_OUT]


def test_a_snapshot_counts_training_pairs_that_repeat_evaluation_prompts(guardrail_dataset, lead):
    add_eval_pairs(
        guardrail_dataset, lead, [{"prompt": "What dose of medicine number 3 should I take?  ", "response": "No."}]
    )
    snapshot = snapshot_create(dataset=guardrail_dataset, user=lead)
    assert snapshot.eval_overlap == 1
    assert client_for(lead).get(f"/api/snapshots/{snapshot.pk}/").json()["eval_overlap"] == 1


def test_a_dataset_that_refuses_overlap_refuses_the_snapshot_naming_how_many(client, guardrail_dataset, lead):
    dataset_update(dataset=guardrail_dataset, user=lead, refuse_eval_overlap=True)
    held_out = [{"prompt": f"what dose of MEDICINE number {n} should I take?", "response": "No."} for n in (1, 2)]
    add_eval_pairs(guardrail_dataset, lead, held_out)
    api = client_for(lead)
    refused = api.post(f"/api/datasets/{guardrail_dataset.pk}/snapshots/", {}, format="json")
    assert refused.status_code == 409
    message = refused.json()["detail"]
    assert message.startswith("2 approved training pairs repeat or nearly repeat an evaluation pair's prompt")
    run = api.post("/api/runs/", {"dataset": guardrail_dataset.pk, "base_model": TINY}, format="json")
    assert run.status_code == 409
    assert run.json()["detail"] == message
    assert not guardrail_dataset.versions.exists()
    assert not TrainingRun.objects.exists()

    # the same refusal beside the dataset on the new-run form; allowing overlap lets it through
    client.force_login(lead)
    page = client.post(reverse("training-run-new"), form_data(guardrail_dataset)).content.decode()
    assert "2 approved training pairs repeat" in page
    dataset_update(dataset=guardrail_dataset, user=lead, refuse_eval_overlap=False)
    assert api.post(f"/api/datasets/{guardrail_dataset.pk}/snapshots/", {}, format="json").json()["eval_overlap"] == 2


def test_the_run_page_says_what_the_run_was_scored_on_and_warns_of_overlap(client, guardrail_dataset, lead):
    add_eval_pairs(
        guardrail_dataset, lead, [*HELD_OUT, {"prompt": "How long should I bake cake number 1?", "response": "Ask."}]
    )
    evaluation = {
        "source": "eval_set",
        "before": {"kind": "guardrail", "val_loss": 2.0, "refusal_rate": 0.0, "over_refusal_rate": 0.0, "blocked": 1, "allowed": 2},
        "after": {"kind": "guardrail", "val_loss": 1.0, "refusal_rate": 1.0, "over_refusal_rate": 0.0, "blocked": 1, "allowed": 2},
    }  # fmt: skip
    now = timezone.now()
    run = make_run(guardrail_dataset, lead, status="succeeded", evaluation=evaluation, started_at=now, finished_at=now)
    client.force_login(lead)
    page = client.get(reverse("training-run", args=[run.pk])).content.decode()
    assert 'data-evaluation-source="eval_set"' in page
    assert "on the snapshot's evaluation set: 1 blocked and 2 allowed evaluation prompts" in page
    assert "Loss on the evaluation set" in page
    assert 'data-eval-overlap="1"' in page
    assert "1 training pair</strong> of this snapshot repeats" in page
    assert client_for(lead).get(f"/api/runs/{run.pk}/").json()["evaluation"]["source"] == "eval_set"

    plain = make_run(guardrail_dataset, lead, status="succeeded", evaluation={**evaluation, "source": "validation"})
    page = client.get(reverse("training-run", args=[plain.pk])).content.decode()
    assert 'data-evaluation-source="validation"' in page
    assert "the snapshot has no evaluation set" in page
