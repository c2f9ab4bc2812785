"""Blind judgement in a real browser: an annotator opens the judging page from the comparison page, votes with the
keyboard (1, 2, T, B; E for a better answer of their own, during which the keys type), and the comparison page
counts the votes. The runs are rows as a worker leaves them (no worker needed); the `page` fixture fails the test
on any script error or Content-Security-Policy violation. The whole loop with a real worker is in
test_loop_browser.py."""

import re

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import log_in, screenshot
from tests.training_app.test_compare import XSS, answered, scored_run
from tests.training_app.test_compare import qa as qa  # noqa: F401 - the fixture
from training_app.judging.services import Matchup, ab_tally
from training_app.models import ABItem, ABVote
from training_app.snapshots import snapshot_create

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def votes_cast(page, count: int) -> None:
    """Wait until the page has shown the pair after `count` votes (the server said so) and the database agrees."""
    expect(page.locator("[data-judged]")).to_have_text(f"{count} judged so far")


def test_an_annotator_judges_blind_by_keyboard_and_the_comparison_counts_the_votes(
    page, context, live_server, qa, lead, annotator  # noqa: F811
):  # fmt: skip
    dataset, pairs = qa
    snapshot = snapshot_create(dataset=dataset, user=None)
    old = scored_run(snapshot, lead, answered(pairs, [True, True, False, False]))
    new = scored_run(snapshot, lead, [(pair, f"new answer {n} {XSS}", True) for n, pair in enumerate(pairs)])
    log_in(context, live_server, annotator)

    page.goto(f"/training/compare/?runs={old.pk},{new.pk}")
    row = page.locator(f'[data-ab="{old.pk}-{new.pk}"]')
    expect(row.locator('[data-ab-field="votes"]')).to_have_text("0")
    row.get_by_role("link", name="Judge blind").click()
    expect(page).to_have_url(re.compile(rf"/training/runs/{old.pk}/judge/\?against={new.pk}$"))
    page.wait_for_load_state()  # the page's script is in
    expect(page.locator("h1")).to_have_text(f"Judge blind: run {old.pk} against run {new.pk}")
    expect(page.locator("#answer-1")).to_be_visible()
    expect(page.locator("#answer-2")).to_be_visible()
    page_text = page.locator("#judge-pair").inner_text()
    assert "new answer" in page_text  # one side is the new run's answer, its script shown as text
    assert XSS in page_text
    assert f"run:{old.pk}" not in page.content()
    screenshot(page, "judge-pair", full_page=False)

    first = page.locator("#judge-prompt").inner_text()
    page.keyboard.press("1")
    votes_cast(page, 1)
    expect(page.locator("[data-judge-note]")).to_have_text("Vote saved.")
    assert page.locator("#judge-prompt").inner_text() != first  # the next pair, in place

    page.keyboard.press("e")  # the rewrite box opens, focused, and keys type into it instead of voting
    rewrite = page.locator("#vote-form textarea[name=rewrite]")
    expect(rewrite).to_be_focused()
    page.keyboard.type("Both miss it: 1 word, Lima. Be brief!")
    expect(rewrite).to_have_value("Both miss it: 1 word, Lima. Be brief!")
    assert ABVote.objects.count() == 1
    page.keyboard.press("Control+Enter")
    votes_cast(page, 2)
    vote = ABVote.objects.order_by("-id").first()
    assert (vote.choice, vote.rewrite) == ("both_bad", "Both miss it: 1 word, Lima. Be brief!")

    page.keyboard.press("t")
    votes_cast(page, 3)
    page.keyboard.press("2")
    expect(page.locator("#judge-done")).to_contain_text(
        "No prompts left to judge for these two models: you have judged 4"
    )
    chosen = list(ABVote.objects.filter(user=annotator).order_by("id").values_list("choice", flat=True))
    assert chosen == ["a", "both_bad", "tie", "b"]
    assert ABItem.objects.filter(user=annotator).count() == 4  # one item per prompt: none shown twice
    screenshot(page, "judge-done", full_page=False)

    page.goto(f"/training/compare/?runs={old.pk},{new.pk}")
    tally = ab_tally(matchup=Matchup(run=old, against=new))
    row = page.locator(f'[data-ab="{old.pk}-{new.pk}"]')
    expect(row.locator('[data-ab-field="votes"]')).to_have_text("4")
    expect(row.locator('[data-ab-field="wins"]')).to_have_text(str(tally.wins))
    expect(row.locator('[data-ab-field="losses"]')).to_have_text(str(tally.losses))
    expect(row.locator('[data-ab-field="ties"]')).to_have_text("1")
    expect(row.locator('[data-ab-field="both_bad"]')).to_have_text("1")
    assert tally.wins + tally.losses == 2
    expect(row.locator('[data-ab-field="win_rate"]')).to_have_text(f"{tally.wins * 50}%")
    screenshot(page, "compare-ab-summary")
