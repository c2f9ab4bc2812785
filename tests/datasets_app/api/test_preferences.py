"""Preference datasets over the REST API: creating one, pairs with a rejected answer, who may do what, and import and
export in the preference formats (all or nothing, the other kind of file named as the problem)."""

import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from datasets_app.curation.services import dataset_create, example_create
from datasets_app.models import Dataset, Example
from tests.api_client import client_for

pytestmark = pytest.mark.django_db

PAIRS = [
    {
        "prompt": "Can I eat raw cookie dough?",
        "response": "Better not: bake it.",
        "rejected": "Sure!",
        "tags": ["food"],
    },
    {
        "prompt": 'And "quotes", commas,\nnewlines?',
        "response": "Ça marche — 你好 👋",
        "rejected": "No\r\nway",
        "system_prompt": "You are terse.",
        "history": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}],
    },
]
FIELDS = ("prompt", "response", "rejected", "system_prompt", "history", "tags")


@pytest.fixture
def preferences(workspace, lead):
    return dataset_create(workspace=workspace, user=lead, name="Preferences", kind="preference")


def pairs_of(dataset):
    return [{name: getattr(e, name) for name in FIELDS} for e in dataset.examples.order_by("id")]


def upload(api, dataset, name, content, **extra):
    data = {"file": SimpleUploadedFile(name, content), **extra}
    return api.post(f"/api/datasets/{dataset.pk}/import/", data, format="multipart")


def test_a_lead_creates_a_preference_dataset_and_an_annotator_may_not(workspace, lead, annotator, outsider):
    body = {"workspace": workspace.pk, "name": "Prefs", "kind": "preference"}
    assert client_for(annotator).post("/api/datasets/", body, format="json").status_code == 403
    assert client_for(outsider).post("/api/datasets/", body, format="json").status_code == 400
    created = client_for(lead).post("/api/datasets/", body, format="json")
    assert created.status_code == 201
    assert created.json()["kind"] == "preference"
    assert Dataset.objects.get(name="Prefs").is_preference


def test_a_pair_is_written_read_and_edited_with_its_rejected_answer(preferences, annotator):
    api = client_for(annotator)
    created = api.post(f"/api/datasets/{preferences.pk}/examples/", PAIRS[0], format="json")
    assert created.status_code == 201, created.json()
    pk = created.json()["id"]
    assert api.get(f"/api/examples/{pk}/").json()["rejected"] == "Sure!"
    edited = api.patch(f"/api/examples/{pk}/", {"rejected": "Yes, all of it."}, format="json", HTTP_IF_MATCH='"1"')
    assert (edited.status_code, edited.json()["version"], edited.json()["rejected"]) == (200, 2, "Yes, all of it.")
    stale = api.patch(f"/api/examples/{pk}/", {"rejected": "Older."}, format="json", HTTP_IF_MATCH='"1"')
    assert stale.status_code == 412
    revisions = api.get(f"/api/examples/{pk}/revisions/").json()
    assert revisions[-1]["after"] == {"rejected": "Yes, all of it."}
    many = api.post(f"/api/datasets/{preferences.pk}/examples/", PAIRS[1:], format="json")
    assert (many.status_code, many.json()["results"][0]["rejected"]) == (201, "No\r\nway")


def test_submitting_a_pair_without_a_rejected_answer_is_a_conflict(preferences, annotator):
    pair = example_create(dataset=preferences, user=annotator, prompt="Hi?", response="Hello.")
    api = client_for(annotator)
    refused = api.post(f"/api/examples/{pair.pk}/status/", {"action": "submit"}, format="json")
    assert refused.status_code == 409
    assert "may not be blank" in refused.json()["detail"]
    body = {"prompt": "Hi?", "response": "Hello.", "status": "submitted"}
    assert api.post(f"/api/datasets/{preferences.pk}/examples/", body, format="json").json() == {
        "rejected": ["may not be blank once submitted."]
    }


def test_a_general_datasets_pair_may_not_have_a_rejected_answer(dataset, annotator):
    api = client_for(annotator)
    refused = api.post(f"/api/datasets/{dataset.pk}/examples/", PAIRS[0], format="json")
    assert refused.status_code == 400
    assert list(refused.json()) == ["rejected"]
    pair = example_create(dataset=dataset, user=annotator, prompt="Hi?", response="Hello.")
    patched = api.patch(f"/api/examples/{pair.pk}/", {"rejected": "No."}, format="json", HTTP_IF_MATCH='"1"')
    assert (patched.status_code, list(patched.json())) == (400, ["rejected"])
    assert Example.objects.get(pk=pair.pk).version == 1


def test_outsiders_get_404_and_annotators_403_on_preference_pairs(preferences, annotator, outsider):
    pair = example_create(dataset=preferences, user=annotator, status="submitted", **PAIRS[0])
    stranger = client_for(outsider)
    assert stranger.get(f"/api/examples/{pair.pk}/").status_code == 404
    assert stranger.get(f"/api/datasets/{preferences.pk}/export/?format=trl").status_code == 404
    assert upload(stranger, preferences, "p.jsonl", b'{"prompt":"a","chosen":"b","rejected":"c"}').status_code == 404
    approve = client_for(annotator).post(f"/api/examples/{pair.pk}/status/", {"action": "approve"}, format="json")
    assert approve.status_code == 403


def test_a_dataset_with_pairs_keeps_its_preference_kind(preferences, annotator, lead):
    example_create(dataset=preferences, user=annotator, **PAIRS[0])
    changed = client_for(lead).patch(f"/api/datasets/{preferences.pk}/", {"kind": "general"}, format="json")
    assert changed.status_code == 409
    assert "cannot become or stop being a preference dataset" in changed.json()["detail"]


@pytest.mark.parametrize("fmt", ["trl", "trl_chat", "openai_preference", "parquet"])
def test_export_then_import_gives_back_the_same_preference_pairs(fmt, preferences, workspace, annotator, lead):
    for pair in PAIRS:
        example_create(dataset=preferences, user=annotator, **pair)
    api = client_for(annotator)
    response = api.get(f"/api/datasets/{preferences.pk}/export/?format={fmt}")
    assert response.status_code == 200
    content = b"".join(response.streaming_content)
    target = dataset_create(workspace=workspace, user=lead, name=f"copy-{fmt}", kind="preference")
    result = upload(api, target, response["Content-Disposition"].split('"')[1], content)
    assert result.status_code == 201, result.json()
    assert (result.json()["created"], result.json()["format"]) == (2, fmt)
    assert pairs_of(target) == pairs_of(preferences)


def test_a_preference_dataset_exports_trl_by_default_and_refuses_plain_formats(preferences, dataset, annotator):
    example_create(dataset=preferences, user=annotator, **PAIRS[0])
    api = client_for(annotator)
    default = api.get(f"/api/datasets/{preferences.pk}/export/")
    assert default["Content-Disposition"] == 'attachment; filename="Preferences.jsonl"'
    assert json.loads(b"".join(default.streaming_content))["rejected"] == "Sure!"
    plain = api.get(f"/api/datasets/{preferences.pk}/export/?format=alpaca")
    assert plain.status_code == 400
    assert "this is a preference dataset" in plain.json()["format"]
    other = api.get(f"/api/datasets/{dataset.pk}/export/?format=trl")
    assert other.status_code == 400
    assert "this is not a preference dataset" in other.json()["format"]


def test_importing_the_other_kind_of_file_is_refused_and_names_why(preferences, dataset, annotator):
    api = client_for(annotator)
    plain = upload(api, preferences, "pairs.jsonl", b'{"prompt": "Hi?", "response": "Hello."}\n')
    assert plain.status_code == 400
    assert plain.json()["problems"][0]["field"] == "format"
    assert "the pairs format holds plain prompt/response pairs" in plain.json()["problems"][0]["message"]
    asked = upload(api, preferences, "pairs.jsonl", b'{"prompt": "Hi?", "response": "Hello."}\n', format="alpaca")
    assert "this is a preference dataset" in asked.json()["problems"][0]["message"]
    trl = upload(api, dataset, "prefs.jsonl", b'{"prompt": "Hi?", "chosen": "Hello.", "rejected": "Go."}\n')
    assert trl.status_code == 400
    assert "the trl format holds preference pairs" in trl.json()["problems"][0]["message"]
    assert not Example.objects.exists()


def test_a_malformed_preference_file_is_refused_whole_naming_line_and_field(preferences, annotator):
    lines = [
        {"prompt": "Fine?", "chosen": "Yes.", "rejected": "No."},
        {"prompt": "Broken?", "chosen": "Yes."},
        {"prompt": "Also?", "chosen": "Yes.", "rejected": ["no"]},
    ]
    content = b"\n".join(json.dumps(line).encode() for line in lines)
    refused = upload(client_for(annotator), preferences, "prefs.jsonl", content)
    assert refused.status_code == 400
    assert refused.json()["problems"] == [
        {"line": 2, "field": "rejected", "message": "is missing"},
        {"line": 3, "field": "rejected", "message": "is a list of messages, but the prompt is a string: give both "
         "as strings or both as messages"},
    ]  # fmt: skip
    assert not preferences.examples.exists()
