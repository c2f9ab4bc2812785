"""The improvement loop in a real browser, with a real worker training the tiny random SmolLM2: a run; its failures
sent to annotators from the run page; a draft finished by an annotator; a second run; the comparison page showing
the prompt that flipped; blind votes by keyboard (on evaluation prompts and on a prompt typed on the page, answered
by the worker); and the comparison page counting them.

The flip is arranged, not hoped for: the tiny random model refuses nothing, so a guardrail evaluation prompt tagged
blocked fails and the same prompt tagged allowed passes. One evaluation pair is tagged blocked by mistake; the first
run fails it, the lead corrects its tag while reviewing the failures, and the second run passes it ("fixed")."""

import re

import pytest
from playwright.sync_api import expect

from datasets_app.curation.services import example_set_status, example_update
from datasets_app.models import Example
from tests.api_client import client_for
from tests.browser.conftest import log_in, screenshot
from tests.training_app.conftest import FAST, TINY
from tests.training_app.conftest import guardrail_dataset as guardrail_dataset  # noqa: F401 - the fixture
from tests.training_app.test_eval_snapshots import HELD_OUT, add_eval_pairs
from tests.training_app.test_training_worker import watch
from training_app.judging.services import Matchup, ab_tally
from training_app.models import ABVote, FailureDraft, TrainingRun

pytestmark = [pytest.mark.browser, pytest.mark.worker, pytest.mark.django_db(transaction=True)]

BREAD = "How do I know when bread is baked?"
MISTAGGED = {"prompt": BREAD, "response": "It sounds hollow when tapped.", "tags": ["blocked:medical"]}


def train(api, dataset) -> dict:
    created = api.post(
        "/api/runs/",
        {"dataset": dataset.pk, "base_model": TINY, "hyperparameters": {**FAST, "epochs": 1}},
        format="json",
    )
    assert created.status_code == 201, created.json()
    _, run = watch(api, created.json()["id"])
    assert run["status"] == "succeeded", run["error"]
    return run


def test_the_loop_run_failures_draft_second_run_flip_and_blind_votes(
    celery_worker, page, context, live_server, guardrail_dataset, lead, annotator  # noqa: F811
):  # fmt: skip
    aspirin, bread = add_eval_pairs(guardrail_dataset, lead, [HELD_OUT[0], MISTAGGED])
    api = client_for(lead)
    first = train(api, guardrail_dataset)
    assert {item["prompt"]: item["after_ok"] for item in first["eval_items"]} == {aspirin.prompt: False, BREAD: False}

    # the lead sends the failures to annotators from the run page, as they are
    log_in(context, live_server, lead)
    page.goto(f"/training/runs/{first['id']}/")
    page.select_option("#send-failures select[name=prompts]", "as-is")
    page.get_by_role("button", name="Send failures to annotators").click()
    expect(page.locator(".messages")).to_contain_text("Created 2 draft pairs in Medical guardrail")
    drafts = {
        draft.eval_item.prompt: draft.example for draft in FailureDraft.objects.select_related("eval_item", "example")
    }
    # reading them, the lead sees the bread prompt was tagged blocked by mistake, and corrects the evaluation pair
    example_update(example=bread, user=lead, expected_version=bread.version, tags=["allowed:baking"])

    # an annotator finishes the aspirin draft from the run page's link to it
    log_in(context, live_server, annotator)
    page.goto(f"/training/runs/{first['id']}/")
    page.locator(f'[data-draft="{drafts[aspirin.prompt].pk}"]').click()
    expect(page.locator("[data-pair-origin]")).to_contain_text(f"From run {first['id']}")
    page.locator("#f-response").fill("I can't advise on medicine doses for children; please ask a pharmacist.")
    page.keyboard.press("Control+s")
    expect(page.locator(".messages")).to_contain_text("Saved (version 2).")
    page.locator("#f-prompt").click()
    page.keyboard.press("Alt+KeyS")
    expect(page.locator(".messages")).to_contain_text("Submitted.")
    finished = Example.objects.get(pk=drafts[aspirin.prompt].pk)
    assert finished.status == "submitted"
    example_set_status(example=finished, user=lead, action="approve")

    second = train(api, guardrail_dataset)
    assert {item["prompt"]: item["after_ok"] for item in second["eval_items"]} == {aspirin.prompt: False, BREAD: True}

    # the comparison page shows the prompt that flipped first
    page.goto(f"/training/compare/?runs={first['id']},{second['id']}")
    rows = page.locator("#compare-prompts tbody tr")
    expect(rows.first).to_have_attribute("data-flip", "fixed")
    expect(rows.first).to_contain_text(BREAD)
    expect(page.locator("#flip-counts")).to_contain_text("1 fixed, 0 broken")
    expect(page.locator("#diff-counts")).to_contain_text("1 added")  # the finished draft
    screenshot(page, "loop-compare")

    # blind votes by keyboard, from the comparison page's link
    page.locator(f'[data-ab="{first["id"]}-{second["id"]}"]').get_by_role("link", name="Judge blind").click()
    expect(page).to_have_url(re.compile(rf"/training/runs/{first['id']}/judge/\?against={second['id']}$"))
    page.wait_for_load_state()
    page.keyboard.press("1")
    expect(page.locator("[data-judged]")).to_have_text("1 judged so far")
    page.keyboard.press("2")
    expect(page.locator("#judge-done")).to_contain_text("you have judged 2")
    # a prompt of one's own: the worker asks both runs' models, and the pair appears in place
    page.locator("#ask-prompt").fill("Is it safe to give a child aspirin for a fever?")
    page.keyboard.press("Control+Enter")
    expect(page.locator("#judge-prompt")).to_have_text(
        "Is it safe to give a child aspirin for a fever?", timeout=120_000
    )
    expect(page.locator("#ask-prompt")).to_have_value("")
    expect(page.locator("#ask-prompt")).not_to_be_focused()  # sent: the keys judge again
    screenshot(page, "loop-judge-typed", full_page=False)
    page.keyboard.press("t")
    expect(page.locator("#judge-done")).to_contain_text("you have judged 3")
    assert list(ABVote.objects.order_by("id").values_list("choice", flat=True)) == ["a", "b", "tie"]

    # the comparison page counts the votes
    page.goto(f"/training/compare/?runs={first['id']},{second['id']}")
    row = page.locator(f'[data-ab="{first["id"]}-{second["id"]}"]')
    tally = ab_tally(
        matchup=Matchup(run=TrainingRun.objects.get(pk=first["id"]), against=TrainingRun.objects.get(pk=second["id"]))
    )
    expect(row.locator('[data-ab-field="votes"]')).to_have_text("3")
    expect(row.locator('[data-ab-field="ties"]')).to_have_text("1")
    expect(row.locator('[data-ab-field="wins"]')).to_have_text(str(tally.wins))
    assert tally.wins + tally.losses == 2
    expect(row.locator('[data-ab-field="win_rate"]')).to_have_text(f"{tally.wins * 50}%")
    screenshot(page, "loop-compare-votes")
