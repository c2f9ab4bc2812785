"""The real `openai` Python package against a live server: what a script pointed at Instructory sees."""

import openai
import pytest
from django.core.files.storage import default_storage

from datasets_app.models import Membership
from openai_app.keys import api_key_revoke
from openai_app.models import ApiFile, ApiKey
from tests.openai_app.conftest import CHAT_LINES, jsonl
from training_app.models import RunStatus, TrainingRun

PREFERENCE_LINE = {
    "input": {"messages": [{"role": "user", "content": "Tell me a secret."}]},
    "preferred_output": [{"role": "assistant", "content": "I can't share secrets."}],
    "non_preferred_output": [{"role": "assistant", "content": "The password is hunter2."}],
}


def test_models_lists_base_and_fine_tuned_models_and_deletes_a_fine_tuned_one(client_with, lead_key, tuned_run):
    client = client_with(lead_key)
    name = f"ft:smollm2-tiny-random:acme::ftjob-{tuned_run.pk}"
    listed = {model.id: model for model in client.models.list()}
    assert {"smollm2-135m-instruct", "smollm2-tiny-random", name} <= set(listed)
    assert listed[name].object == "model"
    assert listed[name].owned_by == "acme"
    assert listed[name].created > 0
    assert client.models.retrieve("smollm2-tiny-random").owned_by == "instructory"
    assert client.models.retrieve(name).id == name
    artifact = tuned_run.artifact.name
    assert default_storage.exists(artifact)

    deleted = client.models.delete(name)

    assert (deleted.id, deleted.deleted) == (name, True)
    assert name not in {model.id for model in client.models.list()}
    with pytest.raises(openai.NotFoundError) as missing:
        client.models.retrieve(name)
    assert missing.value.code == "model_not_found"
    assert not default_storage.exists(artifact)
    tuned_run.refresh_from_db()
    assert tuned_run.status == RunStatus.SUCCEEDED  # the run and its history stay on the dashboard
    assert not tuned_run.artifact


def test_a_file_is_uploaded_listed_read_and_deleted(client_with, annotator_key):
    client = client_with(annotator_key)
    content = jsonl(CHAT_LINES)

    uploaded = client.files.create(file=("train.jsonl", content), purpose="fine-tune")

    assert uploaded.id.startswith("file-")
    assert (uploaded.object, uploaded.bytes, uploaded.filename, uploaded.purpose) == (
        "file", len(content), "train.jsonl", "fine-tune",
    )  # fmt: skip
    assert [listed.id for listed in client.files.list()] == [uploaded.id]
    assert client.files.retrieve(uploaded.id).bytes == len(content)
    assert client.files.content(uploaded.id).read() == content
    stored = ApiFile.objects.get().file.name
    assert default_storage.exists(stored)

    deleted = client.files.delete(uploaded.id)

    assert (deleted.id, deleted.object, deleted.deleted) == (uploaded.id, "file", True)
    assert list(client.files.list()) == []
    with pytest.raises(openai.NotFoundError):
        client.files.retrieve(uploaded.id)
    assert not default_storage.exists(stored)


def test_a_preference_file_is_accepted_and_pages_of_files_follow_after(client_with, lead_key):
    client = client_with(lead_key)
    first = client.files.create(file=("a.jsonl", jsonl([PREFERENCE_LINE] * 2)), purpose="fine-tune")
    second = client.files.create(file=("b.jsonl", jsonl(CHAT_LINES)), purpose="fine-tune")
    page = client.files.list(limit=1)
    assert [file.id for file in page.data] == [second.id]
    assert page.has_more
    assert [file.id for file in client.files.list(limit=1)] == [second.id, first.id]  # the client follows `after`
    assert [file.id for file in client.files.list(limit=1, order="asc")] == [first.id, second.id]
    assert ApiFile.objects.get(public_id=first.id).format == "preference"


def stored_files(folder: str = "openai_files") -> set[str]:
    """Every file the storage holds under `folder` (other tests' files too: compare before and after)."""
    if not default_storage.exists(folder):
        return set()
    folders, files = default_storage.listdir(folder)
    return {f"{folder}/{name}" for name in files} | {f for sub in folders for f in stored_files(f"{folder}/{sub}")}


def test_a_bad_file_is_refused_naming_the_line_and_field_and_nothing_is_stored(client_with, lead_key):
    client = client_with(lead_key)
    before = stored_files()
    bad = jsonl([CHAT_LINES[0], {"messages": [{"role": "user", "content": "Hi?"}, {"role": "assistant"}]}])
    with pytest.raises(openai.BadRequestError) as refused:
        client.files.create(file=("bad.jsonl", bad), purpose="fine-tune")
    assert refused.value.param == "file"
    assert "line 2: messages[1].content is missing" in refused.value.message
    # weights are OpenAI's: 0 or 1 on assistant messages (CHAT_LINES[1] has both); anything else names its line
    odd_weight = {
        "messages": [{"role": "user", "content": "Hi?"}, {"role": "assistant", "content": "Yo", "weight": 0.5}]
    }
    with pytest.raises(openai.BadRequestError) as refused:
        client.files.create(file=("weights.jsonl", jsonl([CHAT_LINES[1], odd_weight])), purpose="fine-tune")
    assert "line 2: messages[1].weight must be 0 or 1" in refused.value.message
    with pytest.raises(openai.BadRequestError) as wrong_purpose:
        client.files.create(file=("ok.jsonl", jsonl(CHAT_LINES)), purpose="batch")
    assert wrong_purpose.value.param == "purpose"
    assert not ApiFile.objects.exists()
    assert stored_files() == before


def test_a_file_over_the_import_limit_is_refused_413_unread(client_with, lead_key, settings):
    settings.IMPORT_MAX_BYTES = 1000
    client = client_with(lead_key)
    with pytest.raises(openai.APIStatusError) as refused:
        client.files.create(file=("big.jsonl", jsonl(CHAT_LINES * 2000)), purpose="fine-tune")
    assert refused.value.status_code == 413
    assert refused.value.code == "file_too_large"
    assert not ApiFile.objects.exists()


def test_bad_revoked_and_orphaned_keys_raise_authentication_error(client_with, key_of, admin_member, workspace):
    with pytest.raises(openai.AuthenticationError) as wrong:
        client_with("sk-inst-not-a-real-key-at-all").models.list()
    assert wrong.value.code == "invalid_api_key"
    assert wrong.value.type == "invalid_request_error"

    revoked = key_of("lead")
    client_with(revoked).models.list()
    api_key_revoke(key=ApiKey.objects.get(name="lead key"), by=admin_member)
    with pytest.raises(openai.AuthenticationError):
        client_with(revoked).models.list()

    orphaned = key_of("annotator")
    client_with(orphaned).models.list()
    Membership.objects.filter(user=admin_member, workspace=workspace).delete()  # its creator left the workspace
    with pytest.raises(openai.AuthenticationError):
        client_with(orphaned).models.list()


def test_unknown_ids_raise_not_found_in_openai_shape(client_with, lead_key):
    client = client_with(lead_key)
    with pytest.raises(openai.NotFoundError) as model:
        client.models.retrieve("gpt-4o")
    assert (model.value.code, model.value.param) == ("model_not_found", "model")
    with pytest.raises(openai.NotFoundError) as fine_tuned:
        client.models.retrieve("ft:smollm2-tiny-random:acme::ftjob-999999")
    assert fine_tuned.value.code == "model_not_found"
    with pytest.raises(openai.NotFoundError):
        client.files.retrieve("file-doesnotexist")
    with pytest.raises(openai.NotFoundError):
        client.files.delete("file-doesnotexist")
    # a path that names nothing answers in the same shape
    with pytest.raises(openai.NotFoundError) as unknown:
        client.get("/nothing/here", cast_to=object)
    assert set(unknown.value.body) == {"message", "type", "param", "code"}


def test_an_annotator_key_cannot_delete_a_model(client_with, annotator_key, tuned_run):
    client = client_with(annotator_key)
    name = client.models.list().data[-1].id
    with pytest.raises(openai.PermissionDeniedError):
        client.models.delete(name)
    with pytest.raises(openai.PermissionDeniedError):
        client_with(annotator_key).models.delete("smollm2-tiny-random")
    assert TrainingRun.objects.get(pk=tuned_run.pk).artifact


def test_a_key_of_another_workspace_sees_nothing_of_this_one(client_with, lead_key, key_of, other_admin, tuned_run):
    ours = client_with(lead_key)
    uploaded = ours.files.create(file=("train.jsonl", jsonl(CHAT_LINES)), purpose="fine-tune")
    name = f"ft:smollm2-tiny-random:acme::ftjob-{tuned_run.pk}"
    theirs = client_with(key_of("lead", by=other_admin))

    assert list(theirs.files.list()) == []
    assert not [model.id for model in theirs.models.list() if model.id.startswith("ft:")]
    for call in (
        lambda: theirs.files.retrieve(uploaded.id),
        lambda: theirs.files.content(uploaded.id),
        lambda: theirs.files.delete(uploaded.id),
        lambda: theirs.models.retrieve(name),
        lambda: theirs.models.delete(name),
    ):
        with pytest.raises(openai.NotFoundError):
            call()
    assert ours.files.retrieve(uploaded.id).id == uploaded.id
    assert TrainingRun.objects.get(pk=tuned_run.pk).artifact
