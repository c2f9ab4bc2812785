"""The example editor: saving, status actions, stale saves and the conflict page, preview and token counts."""

import re

import pytest
from django.urls import reverse

from datasets_app.curation.services import example_create, example_set_status, example_update
from datasets_app.models import Example, ExampleStatus
from tests.factories import ExampleFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def pair(dataset, annotator):
    return example_create(dataset=dataset, user=annotator, prompt="How do I whisk eggs?", response="With a fork.")


def save(client, example, version=None, intent="save", follow=False, **fields):
    data = {
        "version": example.version if version is None else version,
        "intent": intent,
        "system_prompt": example.system_prompt,
        "prompt": example.prompt,
        "response": example.response,
        "tags": ", ".join(example.tags),
        **fields,
    }
    return client.post(reverse("example", args=[example.pk]), data, follow=follow)


def test_editor_shows_the_pair_its_version_and_the_guidelines(client, dataset, pair, annotator):
    dataset.guidelines = "## Rules\n\n- Be **brief**."
    dataset.save()
    client.force_login(annotator)
    page = client.get(reverse("example", args=[pair.pk])).content.decode()
    assert "How do I whisk eggs?</textarea>" in page
    assert 'name="version" value="1"' in page
    assert "<strong>brief</strong>" in page  # the guidelines, rendered
    assert 'value="save_next"' in page
    assert 'value="approve"' not in page  # annotators get no approve button


def test_lead_sees_approve_and_reject(client, pair, lead):
    client.force_login(lead)
    page = client.get(reverse("example", args=[pair.pk])).content.decode()
    assert 'value="approve"' in page
    assert 'value="reject"' in page


def test_save_stores_the_text_as_a_new_version(client, pair, annotator):
    client.force_login(annotator)
    response = save(client, pair, prompt="How do I whisk eggs quickly?\r\nAnd well?", tags="eggs, basics, eggs")
    assert response.status_code == 302
    assert response["Location"] == f"{reverse('example', args=[pair.pk])}?saved={pair.pk}"
    pair.refresh_from_db()
    assert pair.prompt == "How do I whisk eggs quickly?\nAnd well?"  # the browser's CRLF is not a change
    assert pair.tags == ["eggs", "basics"]
    assert pair.version == 2
    assert pair.revisions.last().user == annotator


def test_saving_unchanged_text_makes_no_new_version(client, dataset, annotator):
    pair = example_create(dataset=dataset, user=annotator, prompt="Line one\nLine two", response="Fine.")
    client.force_login(annotator)
    save(client, pair, prompt="Line one\r\nLine two")  # what a browser sends back for the same text
    pair.refresh_from_db()
    assert (pair.version, pair.revisions.count()) == (1, 1)


def test_earlier_turns_are_saved_in_order_and_emptied_ones_dropped(client, pair, annotator):
    client.force_login(annotator)
    save(
        client,
        pair,
        turn_role=["user", "assistant", "user"],
        turn_content=["Hi!", "Hello, what are we cooking?", "   "],
    )
    pair.refresh_from_db()
    assert pair.history == [
        {"role": "user", "content": "Hi!"},
        {"role": "assistant", "content": "Hello, what are we cooking?"},
    ]
    page = client.get(reverse("example", args=[pair.pk])).content.decode()
    assert "Hello, what are we cooking?</textarea>" in page


TURNS = {"turn_role": ["user", "assistant", "user", "assistant"], "turn_content": ["Q1?", "Lyon?", "Q2?", "Paris."]}


def train_boxes(page: str) -> list[tuple[str, bool]]:
    """Each earlier turn's "Train on this turn" box: its value and whether it is checked."""
    boxes = re.findall(r'<input type="checkbox" name="turn_weight" value="(1?)" data-turn-train( checked)?>', page)
    return [(value, bool(checked)) for value, checked in boxes]


def test_unchecking_train_on_this_turn_stores_weight_0_and_checking_it_again_clears_it(client, pair, annotator):
    client.force_login(annotator)
    # every turn posts a hidden "0", then its box's value when checked (a user turn's box is hidden, but posts)
    save(client, pair, **TURNS, turn_weight=["0", "", "0", "0", "", "0", ""])
    pair.refresh_from_db()
    assert pair.history[1] == {"role": "assistant", "content": "Lyon?", "weight": 0}
    assert "weight" not in pair.history[3]  # checked, as by default: trained on, like every answer without a weight
    assert pair.version == 2
    page = client.get(reverse("example", args=[pair.pk])).content.decode()
    assert "Train on this turn" in page
    assert train_boxes(page)[:4] == [("", True), ("", False), ("", True), ("", True)]  # then the new-turn template's

    save(client, pair, **TURNS, turn_weight=["0", "", "0", "0", "", "0", ""])  # the page posted again as it is
    pair.refresh_from_db()
    assert pair.version == 2  # unchanged: no new version
    save(client, pair, **TURNS, turn_weight=["0", "", "0", "", "0", "", "0", ""])
    pair.refresh_from_db()
    assert (pair.history[1], pair.version) == ({"role": "assistant", "content": "Lyon?"}, 3)


def test_a_turn_stored_with_weight_1_keeps_it_when_saved_unchanged(client, dataset, annotator):
    history = [{"role": "user", "content": "Q1?"}, {"role": "assistant", "content": "Lyon?", "weight": 1}]
    pair = example_create(dataset=dataset, user=annotator, prompt="Q2?", response="Paris.", history=history)
    client.force_login(annotator)

    page = client.get(reverse("example", args=[pair.pk])).content.decode()
    save(client, pair, turn_role=["user", "assistant"], turn_content=["Q1?", "Lyon?"], turn_weight=["0", "", "0", "1"])

    assert train_boxes(page)[:2] == [("", True), ("1", True)]
    pair.refresh_from_db()
    assert (pair.history, pair.version) == (history, 1)


def test_a_stale_save_of_a_weight_gets_the_conflict_page_which_keeps_it(client, pair, annotator, lead):
    example_update(example=pair, user=lead, expected_version=1, history=[{"role": "user", "content": "Q1?"},
                   {"role": "assistant", "content": "Lyon?"}])  # fmt: skip
    client.force_login(annotator)

    response = save(client, pair, version=1, turn_role=["user", "assistant"], turn_content=["Q1?", "Lyon?"],
                    turn_weight=["0", "", "0"])  # fmt: skip

    assert response.status_code == 409
    page = response.content.decode()
    assert "assistant (not trained on): Lyon?" in page  # mine, beside theirs
    keep = page.split("data-conflict-keep")[1].split("</form>")[0]
    assert re.findall(r'name="turn_weight" value="(1?0?)"', keep) == ["0", "", "0"]
    assert "weight" not in Example.objects.get(pk=pair.pk).history[1]


def test_save_and_next_goes_to_the_next_pair_of_the_same_list(client, dataset, annotator):
    first, _, third = (ExampleFactory(dataset=dataset, status=status) for status in ("submitted", "draft", "submitted"))
    client.force_login(annotator)
    response = save(client, first, intent="save_next", response="Edited.", list="status=submitted")
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("example", args=[third.pk]))
    assert "status=submitted" in response["Location"]
    assert f"saved={first.pk}" in response["Location"]
    last = save(client, third, intent="save_next", list="status=submitted", follow=True)
    assert last.redirect_chain[-1][0].startswith(reverse("dataset", args=[dataset.pk]))
    assert "That was the last pair in this list." in last.content.decode()


def test_submit_saves_the_text_and_submits(client, pair, annotator):
    client.force_login(annotator)
    page = save(client, pair, intent="submit", response="Whisk with a fork, briskly.", follow=True).content.decode()
    pair.refresh_from_db()
    assert (pair.status, pair.response) == (ExampleStatus.SUBMITTED, "Whisk with a fork, briskly.")
    assert "Submitted." in page


def test_submitting_an_empty_response_is_refused_and_keeps_what_was_typed(client, dataset, annotator):
    empty = example_create(dataset=dataset, user=annotator, prompt="Half-written prompt", response="")
    client.force_login(annotator)
    response = save(client, empty, intent="submit", prompt="Half-written prompt, now longer")
    assert response.status_code == 400
    page = response.content.decode()
    assert "Nothing was saved" in page
    assert "may not be blank" in page
    assert "Half-written prompt, now longer</textarea>" in page
    empty.refresh_from_db()
    assert (empty.status, empty.prompt) == ("draft", "Half-written prompt")


def test_lead_approves(client, pair, annotator, lead):
    example_set_status(example=pair, user=annotator, action="submit")
    pair.refresh_from_db()
    client.force_login(lead)
    save(client, pair, intent="approve")
    pair.refresh_from_db()
    assert pair.status == ExampleStatus.APPROVED


def test_reject_needs_a_comment_and_then_records_it(client, pair, lead):
    client.force_login(lead)
    refused = save(client, pair, intent="reject", comment="  ")
    assert refused.status_code == 400
    assert "a rejection needs a comment" in refused.content.decode().lower()
    assert Example.objects.get(pk=pair.pk).status == "draft"
    save(client, pair, intent="reject", comment="Say which fork.")
    pair.refresh_from_db()
    assert (pair.status, pair.review_comment) == ("rejected", "Say which fork.")
    page = client.get(reverse("example", args=[pair.pk])).content.decode()
    assert "Say which fork." in page


@pytest.mark.parametrize("intent", ["approve", "reject"])
def test_annotator_posting_a_lead_action_gets_403_and_nothing_changes(client, pair, annotator, intent):
    client.force_login(annotator)
    response = save(client, pair, intent=intent, comment="sneaky", response="Changed on the way.")
    assert response.status_code == 403
    pair.refresh_from_db()
    assert (pair.status, pair.response, pair.version) == ("draft", "With a fork.", 1)


# --- stale saves


def test_stale_save_shows_both_versions_and_overwrites_nothing(client, pair, annotator, lead):
    example_update(example=pair, user=lead, expected_version=1, response="With a balloon whisk, in circles.")
    client.force_login(annotator)
    response = save(client, pair, version=1, response="With a fork, in figure eights.")
    assert response.status_code == 409
    page = response.content.decode()
    assert "Someone saved this pair while you were editing it" in page
    assert "With a balloon whisk, in circles." in page  # theirs
    assert "With a fork, in figure eights." in page  # mine
    assert re.search(r"<del>[^<]*balloon whisk[^<]*</del>", page)  # the word-level diff, theirs -> mine
    assert re.search(r"<ins>[^<]*fork[^<]*</ins>", page)
    assert "last edited by leo" in page
    assert Example.objects.get(pk=pair.pk).response == "With a balloon whisk, in circles."


def test_conflict_lets_me_keep_my_version_on_top_of_theirs(client, pair, annotator, lead):
    example_update(example=pair, user=lead, expected_version=1, response="Theirs.")
    client.force_login(annotator)
    page = save(client, pair, version=1, response="Mine.", intent="submit").content.decode()
    keep = page.split("data-conflict-keep")[1].split("</form>")[0]
    assert 'name="version" value="2"' in keep
    assert 'name="intent" value="submit"' in keep
    assert 'name="response" value="Mine."' in keep
    pair.refresh_from_db()
    save(client, pair, version=2, response="Mine.", intent="submit")
    pair.refresh_from_db()
    assert (pair.response, pair.status, pair.version) == ("Mine.", "submitted", 4)
    assert pair.revisions.filter(after__response="Theirs.").exists()  # their version stays in the history


def test_conflict_offers_their_version_and_a_merge_form(client, pair, annotator, lead):
    example_update(example=pair, user=lead, expected_version=1, prompt="How do I whisk egg whites?")
    client.force_login(annotator)
    page = save(client, pair, version=1, prompt="How should I whisk eggs?").content.decode()
    assert f'href="{reverse("example", args=[pair.pk])}"' in page
    assert "Take their version" in page
    assert "Save the merged version" in page
    assert "How should I whisk eggs?</textarea>" in page  # the merge form starts from my text


def test_a_lead_approving_a_stale_version_gets_the_conflict_page(client, pair, annotator, lead):
    example_update(example=pair, user=annotator, expected_version=1, response="Changed after the lead opened it.")
    client.force_login(lead)
    response = save(client, pair, version=1, intent="approve", response="With a fork.")
    assert response.status_code == 409
    assert Example.objects.get(pk=pair.pk).status == "draft"


# --- preview and token counts


def test_markdown_preview_renders_and_sanitizes(client, dataset, annotator):
    client.force_login(annotator)
    response = client.post(
        reverse("markdown-preview", args=[dataset.pk]),
        {"response": "**Bold** and [docs](https://example.com) and [bad](javascript:alert(1)) <b onclick=x>raw</b>"},
    )
    html = response.content.decode()
    assert "<strong>Bold</strong>" in html
    assert 'href="https://example.com"' in html
    assert "javascript:" not in html
    assert "&lt;b onclick=x&gt;raw&lt;/b&gt;" in html
    assert "<b onclick" not in html


def test_token_counts_are_an_estimate_until_the_tokenizer_is_cached(client, dataset, annotator, settings, tmp_path):
    settings.MODEL_CACHE_DIR = tmp_path
    client.force_login(annotator)
    url = reverse("token-counts", args=[dataset.pk])
    estimate = client.post(url, {"prompt": "a" * 40, "response": "b" * 9}).json()
    assert estimate == {"exact": False, "counts": {"prompt": 10, "response": 3}, "total": 13}

    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from tokenizers.pre_tokenizers import Whitespace

    tokenizer = Tokenizer(WordLevel({"[UNK]": 0, "whisk": 1, "the": 2, "eggs": 3}, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = Whitespace()
    (tmp_path / settings.DEFAULT_BASE_MODEL).mkdir()
    tokenizer.save(str(tmp_path / settings.DEFAULT_BASE_MODEL / "tokenizer.json"))
    exact = client.post(url, {"prompt": "whisk the eggs", "response": "the eggs, whisked!"}).json()
    assert exact["exact"] is True
    assert exact["counts"] == {"prompt": 3, "response": 5}


def test_token_counts_use_the_workspace_base_model(client, dataset, annotator, settings, tmp_path):
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from tokenizers.pre_tokenizers import Whitespace

    settings.MODEL_CACHE_DIR = tmp_path
    dataset.workspace.default_base_model = "tiny-words"
    dataset.workspace.save()
    tokenizer = Tokenizer(WordLevel({"[UNK]": 0}, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = Whitespace()
    (tmp_path / "tiny-words").mkdir()
    tokenizer.save(str(tmp_path / "tiny-words" / "tokenizer.json"))
    client.force_login(annotator)
    counts = client.post(reverse("token-counts", args=[dataset.pk]), {"prompt": "one two three four"}).json()
    assert counts == {"exact": True, "counts": {"prompt": 4}, "total": 4}


def test_new_pair_form_creates_a_draft_or_submits(client, dataset, annotator):
    client.force_login(annotator)
    url = reverse("example-new", args=[dataset.pk])
    assert client.get(url).status_code == 200
    response = client.post(
        url, {"prompt": "Is it ripe?", "response": "Press it gently.", "tags": "fruit", "intent": "draft"}
    )
    created = Example.objects.get(prompt="Is it ripe?")
    assert response["Location"] == f"{reverse('example', args=[created.pk])}?saved=new-{dataset.pk}"
    assert (created.status, created.tags, created.created_by) == ("draft", ["fruit"], annotator)
    client.post(url, {"prompt": "Is it sweet?", "response": "Taste it.", "intent": "submit"})
    assert Example.objects.get(prompt="Is it sweet?").status == "submitted"
    again = client.post(url, {"prompt": "Is it sweet?", "response": "Taste it.", "intent": "another"}, follow=True)
    assert "already has this pair" in again.content.decode()
    assert Example.objects.filter(prompt="Is it sweet?").count() == 1


def test_new_pair_that_cannot_be_submitted_keeps_the_text(client, dataset, annotator):
    client.force_login(annotator)
    response = client.post(
        reverse("example-new", args=[dataset.pk]), {"prompt": "Only a prompt", "response": "", "intent": "submit"}
    )
    assert response.status_code == 400
    assert "Only a prompt</textarea>" in response.content.decode()
    assert not Example.objects.exists()
