"""A dataset's evaluation set over the REST API: moving pairs (versioned), importing into it, listing it, its setting."""

import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from datasets_app.curation.services import example_create
from datasets_app.models import Example, ExampleStatus
from tests.api_client import client_for

pytestmark = pytest.mark.django_db


@pytest.fixture
def pair(dataset, annotator):
    return example_create(dataset=dataset, user=annotator, prompt="Is 2 + 2 four?", response="Yes.")


def move(api, example, split, version):
    return api.patch(
        f"/api/examples/{example.pk}/", {"split": split}, format="json", headers={"If-Match": f'"{version}"'}
    )


def test_moving_a_pair_to_the_evaluation_set_is_a_new_version_in_its_history(pair, annotator):
    api = client_for(annotator)
    moved = move(api, pair, "eval", 1)
    assert moved.status_code == 200, moved.json()
    assert (moved.json()["split"], moved.json()["version"], moved["ETag"]) == ("eval", 2, '"2"')
    revisions = api.get(f"/api/examples/{pair.pk}/revisions/").json()
    assert revisions[-1]["version"] == 2
    assert revisions[-1]["action"] == "split"
    assert (revisions[-1]["before"], revisions[-1]["after"]) == ({"split": "train"}, {"split": "eval"})
    back = move(api, pair, "train", 2)
    assert (back.json()["split"], back.json()["version"]) == ("train", 3)


def test_a_stale_move_is_refused_and_changes_nothing(pair, annotator, lead):
    move(client_for(lead), pair, "eval", 1)
    stale = move(client_for(annotator), pair, "train", 1)
    assert stale.status_code == 412
    assert stale["ETag"] == '"2"'
    assert Example.objects.get(pk=pair.pk).split == "eval"
    assert (
        client_for(annotator).patch(f"/api/examples/{pair.pk}/", {"split": "train"}, format="json").status_code == 428
    )


def test_a_move_and_an_edit_in_one_request_are_one_version(pair, annotator):
    body = {"split": "eval", "response": "Yes, four."}
    response = client_for(annotator).patch(
        f"/api/examples/{pair.pk}/", body, format="json", headers={"If-Match": '"1"'}
    )
    assert (response.json()["split"], response.json()["response"], response.json()["version"]) == (
        "eval",
        "Yes, four.",
        2,
    )
    last = client_for(annotator).get(f"/api/examples/{pair.pk}/revisions/").json()[-1]
    assert last["action"] == "edit"
    assert set(last["after"]) == {"split", "response"}


def test_an_annotator_moving_an_approved_pair_leaves_it_approved(dataset, lead, annotator):
    approved = example_create(dataset=dataset, user=lead, prompt="Q?", response="A.", status=ExampleStatus.APPROVED)
    moved = move(client_for(annotator), approved, "eval", 1)
    assert (moved.json()["split"], moved.json()["status"]) == ("eval", "approved")


def test_an_unknown_set_is_400_and_outsiders_get_404(pair, annotator, outsider):
    bad = move(client_for(annotator), pair, "test", 1)
    assert bad.status_code == 400
    assert "split" in bad.json()
    assert move(client_for(outsider), pair, "eval", 1).status_code == 404
    assert Example.objects.get(pk=pair.pk).split == "train"


def test_the_list_filters_by_set_and_the_dataset_counts_both(dataset, annotator, outsider):
    for n in range(3):
        example_create(dataset=dataset, user=annotator, prompt=f"Train {n}?", response="A.")
    example_create(dataset=dataset, user=annotator, prompt="Held out?", response="A.", split="eval")
    api = client_for(annotator)
    held_out = api.get(f"/api/datasets/{dataset.pk}/examples/?split=eval").json()["results"]
    assert [(row["prompt"], row["split"]) for row in held_out] == [("Held out?", "eval")]
    assert len(api.get(f"/api/datasets/{dataset.pk}/examples/?split=train").json()["results"]) == 3
    assert api.get(f"/api/datasets/{dataset.pk}/examples/?split=holdout").status_code == 400
    assert api.get(f"/api/datasets/{dataset.pk}/").json()["split_counts"] == {"train": 3, "eval": 1}
    listed = next(row for row in api.get("/api/datasets/").json() if row["id"] == dataset.pk)
    assert listed["split_counts"] == {"train": 3, "eval": 1}
    assert client_for(outsider).get(f"/api/datasets/{dataset.pk}/examples/?split=eval").status_code == 404


def test_pairs_can_be_created_in_the_evaluation_set(dataset, annotator):
    api = client_for(annotator)
    one = api.post(
        f"/api/datasets/{dataset.pk}/examples/", {"prompt": "P?", "response": "R.", "split": "eval"}, format="json"
    )
    assert one.json()["split"] == "eval"
    many = [{"prompt": f"Q{n}?", "response": "R.", "split": "eval"} for n in range(2)]
    assert api.post(f"/api/datasets/{dataset.pk}/examples/", many, format="json").json()["created"] == 2
    assert dataset.examples.filter(split="eval").count() == 3


def test_an_import_with_split_eval_fills_the_evaluation_set(dataset, annotator):
    records = [{"prompt": f"Held out {n}?", "response": "A."} for n in range(3)]
    content = "\n".join(json.dumps(record) for record in records).encode()
    api = client_for(annotator)
    response = api.post(
        f"/api/datasets/{dataset.pk}/import/",
        {"file": SimpleUploadedFile("eval.jsonl", content), "split": "eval"},
        format="multipart",
    )
    assert response.status_code == 201, response.json()
    assert sorted(dataset.examples.values_list("split", flat=True)) == ["eval"] * 3
    plain = {"file": SimpleUploadedFile("train.jsonl", b'{"prompt": "T?", "response": "A."}')}
    assert api.post(f"/api/datasets/{dataset.pk}/import/", plain, format="multipart").status_code == 201
    assert dataset.examples.get(prompt="T?").split == "train"
    wrong = {"file": SimpleUploadedFile("x.jsonl", b'{"prompt": "X?", "response": "A."}'), "split": "test"}
    assert api.post(f"/api/datasets/{dataset.pk}/import/", wrong, format="multipart").status_code == 400


def test_leads_set_refuse_eval_overlap_and_annotators_cannot(dataset, lead, annotator):
    assert client_for(lead).get(f"/api/datasets/{dataset.pk}/").json()["refuse_eval_overlap"] is False
    changed = client_for(lead).patch(f"/api/datasets/{dataset.pk}/", {"refuse_eval_overlap": True}, format="json")
    assert changed.json()["refuse_eval_overlap"] is True
    refused = client_for(annotator).patch(f"/api/datasets/{dataset.pk}/", {"refuse_eval_overlap": False}, format="json")
    assert refused.status_code == 403
    dataset.refresh_from_db()
    assert dataset.refuse_eval_overlap is True
