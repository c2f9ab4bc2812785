"""The pages of a preference dataset: the editor's chosen and rejected answers side by side with a word diff and a
swap, the list's two columns, downloads, imports and creating such a dataset."""

import re

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from datasets_app.curation.services import dataset_create, example_create, example_update
from datasets_app.models import Dataset, Example
from tests.datasets_app.views.test_xss import PAYLOAD, assert_inert

pytestmark = pytest.mark.django_db


@pytest.fixture
def preferences(workspace, lead):
    return dataset_create(workspace=workspace, user=lead, name="Preferences", kind="preference")


@pytest.fixture
def pair(preferences, annotator):
    return example_create(
        dataset=preferences, user=annotator, prompt="Can I eat raw cookie dough?",
        response="Better not: raw flour can carry bacteria.", rejected="Sure, eat as much as you like.",
    )  # fmt: skip


def editor(client, example) -> str:
    return client.get(reverse("example", args=[example.pk])).content.decode()


def save(client, example, **fields):
    data = {"version": example.version, "intent": "save", "prompt": example.prompt, "response": example.response,
            "rejected": example.rejected, "tags": "", **fields}  # fmt: skip
    return client.post(reverse("example", args=[example.pk]), data)


def test_the_editor_shows_both_answers_side_by_side_with_a_word_diff_and_a_swap(client, pair, annotator):
    client.force_login(annotator)
    page = editor(client, pair)
    sides = page.split("data-sides")[1].split("</div>\n</div>")[0]
    assert sides.index("Chosen answer") < sides.index("Rejected answer")
    assert "Better not: raw flour can carry bacteria.</textarea>" in sides
    assert "Sure, eat as much as you like.</textarea>" in sides
    diff = page.split("data-sides-diff>")[1].split("</details>")[0]
    assert "<del>Sure, eat as much as you like</del>" in diff  # only in the rejected answer, as one phrase
    assert "<ins>Better not: raw flour can carry bacteria</ins>." in diff  # only in the chosen one
    assert 'name="intent" value="swap"' in page
    assert 'data-shortcut="swap"' in page
    assert "Markdown preview of the response" not in page


def test_a_general_pair_keeps_its_single_response_and_no_swap(client, dataset, annotator):
    plain = example_create(dataset=dataset, user=annotator, prompt="Hi?", response="Hello.")
    client.force_login(annotator)
    page = editor(client, plain)
    assert 'name="rejected"' not in page
    assert 'value="swap"' not in page
    refused = save(client, plain, intent="swap")
    assert refused.status_code == 400
    assert "Only the pairs of a preference dataset" in refused.content.decode()
    assert Example.objects.get(pk=plain.pk).version == 1


def test_swap_exchanges_the_answers_as_a_new_version_with_a_revision(client, pair, annotator):
    client.force_login(annotator)
    response = save(client, pair, intent="swap")
    assert response.status_code == 302
    pair.refresh_from_db()
    assert (pair.response, pair.rejected, pair.version) == (
        "Sure, eat as much as you like.", "Better not: raw flour can carry bacteria.", 2,
    )  # fmt: skip
    assert pair.revisions.last().before == {
        "response": "Better not: raw flour can carry bacteria.", "rejected": "Sure, eat as much as you like.",
    }  # fmt: skip
    page = client.get(response["Location"]).content.decode()
    assert "Swapped the chosen and the rejected answer (version 2)." in page


def test_swap_takes_what_was_typed_and_a_stale_one_shows_the_conflict(client, pair, annotator, lead):
    client.force_login(annotator)
    save(client, pair, intent="swap", response="Typed chosen.", rejected="Typed rejected.")
    pair.refresh_from_db()
    assert (pair.response, pair.rejected) == ("Typed rejected.", "Typed chosen.")
    example_update(example=pair, user=lead, expected_version=2, rejected="Theirs.")
    stale = save(client, pair, intent="swap")  # still at version 2 in this browser
    assert stale.status_code == 409
    page = stale.content.decode()
    assert "Rejected answer" in page
    keep = page.split("data-conflict-keep")[1].split("</form>")[0]
    assert 'name="rejected" value="Typed rejected."' in keep  # what the swap would have stored ...
    assert 'name="response" value="Typed chosen."' in keep
    assert 'name="intent" value="save"' in keep  # ... kept by a plain save, not swapped back
    assert Example.objects.get(pk=pair.pk).rejected == "Theirs."


def test_submitting_without_a_rejected_answer_keeps_what_was_typed(client, pair, annotator):
    client.force_login(annotator)
    response = save(client, pair, intent="submit", rejected="   ", response="Typed but refused.")
    assert response.status_code == 400
    page = response.content.decode()
    assert "may not be blank once submitted" in page
    assert "Typed but refused.</textarea>" in page
    assert Example.objects.get(pk=pair.pk).status == "draft"


def test_the_diff_follows_the_typing_and_is_inert(client, preferences, annotator, outsider):
    url = reverse("sides-diff", args=[preferences.pk])
    client.force_login(annotator)
    html = client.post(url, {"response": f"Keep {PAYLOAD}", "rejected": f"Drop {PAYLOAD}"}).content.decode()
    assert_inert(html, "sides diff")
    assert "<del>Drop</del>" in html
    assert "<ins>Keep</ins>" in html
    assert "&lt;script&gt;window.__xss=1&lt;/script&gt;" in html
    same = client.post(url, {"response": "Boil them.", "rejected": " boil THEM."}).content.decode()
    assert "The two answers are the same" in same
    client.force_login(outsider)
    assert client.post(url, {"response": "a", "rejected": "b"}).status_code == 404


def test_hostile_answers_are_shown_as_text_in_the_editor_list_and_history(client, preferences, annotator):
    hostile = example_create(
        dataset=preferences, user=annotator, prompt=f"Q {PAYLOAD}", response=f"Chosen {PAYLOAD}",
        rejected=f"Rejected {PAYLOAD}",
    )  # fmt: skip
    example_update(example=hostile, user=annotator, expected_version=1, rejected=f"Edited {PAYLOAD}")
    client.force_login(annotator)
    for name in ("example", "example-history"):
        assert_inert(client.get(reverse(name, args=[hostile.pk])).content.decode(), name)
    listing = client.get(reverse("dataset", args=[preferences.pk])).content.decode()
    assert_inert(listing, "list")
    assert "Edited &lt;script&gt;" in listing


def test_the_list_shows_both_answers_and_offers_the_preference_downloads(client, pair, preferences, annotator):
    client.force_login(annotator)
    page = client.get(reverse("dataset", args=[preferences.pk])).content.decode()
    assert "<th>Chosen</th><th>Rejected</th>" in page
    assert "Sure, eat as much as you like." in page
    downloads = re.findall(r'data-download-format="([a-z_]+)"', page)
    assert downloads == ["trl", "trl_chat", "openai_preference", "parquet"]
    export = reverse("api-dataset-export", args=[preferences.pk])
    assert f'href="{export}?format=trl_chat"' in page
    assert client.get(f"{export}?format=trl_chat").status_code == 200  # the browser's session downloads it


def test_the_history_names_the_rejected_answer(client, pair, annotator):
    example_update(example=pair, user=annotator, expected_version=1, rejected="Sure, eat a spoonful.")
    client.force_login(annotator)
    page = client.get(reverse("example-history", args=[pair.pk])).content.decode()
    assert "Rejected answer" in page
    assert "Chosen answer" in page  # the first version's fields
    assert re.search(r"<ins>[^<]*spoonful", page)


def test_a_new_pair_is_written_with_both_answers(client, preferences, annotator):
    client.force_login(annotator)
    form = client.get(reverse("example-new", args=[preferences.pk])).content.decode()
    assert 'name="rejected"' in form
    assert 'value="swap"' not in form  # nothing saved yet to swap
    data = {"prompt": "Hi?", "response": "Hello!", "rejected": "What?", "intent": "submit", "tags": ""}
    client.post(reverse("example-new", args=[preferences.pk]), data)
    assert Example.objects.get(prompt="Hi?").rejected == "What?"


def test_the_import_page_offers_the_preference_formats_and_names_a_plain_file(client, preferences, annotator):
    client.force_login(annotator)
    page = client.get(reverse("dataset-import", args=[preferences.pk])).content.decode()
    formats = page.split('name="format"')[1].split("</select>")[0]
    assert re.findall(r'<option value="([a-z_]+)"', formats) == ["trl", "trl_chat", "openai_preference", "parquet"]
    upload = SimpleUploadedFile("pairs.jsonl", b'{"prompt": "Hi?", "response": "Hello."}\n')
    refused = client.post(reverse("dataset-import", args=[preferences.pk]), {"file": upload})
    assert refused.status_code == 400
    assert "this is a preference dataset" in refused.content.decode()
    trl = SimpleUploadedFile("prefs.jsonl", b'{"prompt": "Hi?", "chosen": "Hello.", "rejected": "Go."}\n')
    assert client.post(reverse("dataset-import", args=[preferences.pk]), {"file": trl}).status_code == 200
    assert preferences.examples.get().rejected == "Go."


def test_leads_create_a_preference_dataset_from_the_home_page(client, workspace, lead, annotator):
    url = reverse("dataset-new", args=[workspace.pk])
    client.force_login(annotator)
    assert url not in client.get(reverse("home")).content.decode()
    assert client.get(url).status_code == 403
    client.force_login(lead)
    assert url in client.get(reverse("home")).content.decode()
    assert "Preference pairs" in client.get(url).content.decode()
    response = client.post(url, {"name": "Prefs", "kind": "preference", "description": ""})
    created = Dataset.objects.get(name="Prefs")
    assert response["Location"] == reverse("dataset", args=[created.pk])
    assert created.is_preference
    again = client.post(url, {"name": "Prefs", "kind": "general"})
    assert again.status_code == 400
    assert "already has a dataset named" in again.content.decode()


def test_a_preference_pair_keeps_its_earlier_answers_weighted_without_offering_the_box(client, preferences, annotator):
    # Preference tuning learns from the final answers only, so "Train on this turn" means nothing there.
    history = [{"role": "user", "content": "Hi?"}, {"role": "assistant", "content": "Hello."}]
    pair = example_create(
        dataset=preferences, user=annotator, prompt="And now?", response="Now this.", rejected="No.", history=history
    )
    client.force_login(annotator)
    box = re.search(r"<label class=\"turn-train[^>]*>", editor(client, pair)).group(0)
    assert " hidden" in box

    save(client, pair, turn_role=["user", "assistant"], turn_content=["Hi?", "Hello."], turn_weight=["0", "", "0", ""])

    assert Example.objects.get(pk=pair.pk).version == pair.version  # saved as it was: nothing changed
