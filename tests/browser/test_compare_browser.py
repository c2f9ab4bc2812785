"""A lead ticks two runs on the runs list, presses Compare and reads the comparison in a real browser.

The runs are rows as a worker leaves them (tests/training_app/test_compare.py builds them); the `page` fixture fails
the test on any script error or Content-Security-Policy violation."""

import re

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import log_in, screenshot
from tests.training_app.conftest import TINY
from tests.training_app.test_compare import XSS, answered, approved, scored_run
from tests.training_app.test_compare import qa as qa  # noqa: F401 - the fixture
from training_app.models import TrainingRun
from training_app.snapshots import snapshot_create

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_lead_compares_two_runs_and_sees_the_fixed_prompt_first(page, context, live_server, qa, lead):  # noqa: F811
    dataset, pairs = qa
    old = scored_run(snapshot_create(dataset=dataset, user=None), lead, answered(pairs, [True, True, False, False]))
    approved(dataset, lead, [("Largest ocean?", "The Pacific.")])
    new = scored_run(
        snapshot_create(dataset=dataset, user=None), lead, answered(pairs, [True, False, True, False]),
        after={"exact_match": 0.75, "token_f1": 0.7, "val_loss": 0.9}, losses=(1.9, 1.1, 0.7, 0.5),
    )  # fmt: skip
    TrainingRun.objects.create(snapshot=new.snapshot, base_model=TINY, created_by=lead)  # queued: the list refreshes
    log_in(context, live_server, lead)

    page.goto("/training/")
    page.get_by_label(f"Compare run {old.pk}").check()
    page.get_by_label(f"Compare run {new.pk}").check()
    # the ticks survive the list's refresh every 2 s while a run is queued
    page.evaluate("() => document.body.addEventListener('htmx:afterSettle', () => { window.refreshed = true; })")
    page.wait_for_function("() => window.refreshed === true", timeout=10_000)
    expect(page.get_by_label(f"Compare run {old.pk}")).to_be_checked()
    expect(page.get_by_label(f"Compare run {new.pk}")).to_be_checked()
    screenshot(page, "compare-pick-runs", full_page=False)
    page.get_by_role("button", name="Compare").click()

    expect(page).to_have_url(re.compile(rf"/training/compare/\?runs={old.pk},{new.pk}$"))
    rows = page.locator("#compare-prompts tbody tr")
    expect(rows.first).to_have_attribute("data-flip", "fixed")
    expect(rows.first).to_contain_text(f"Say {XSS}")  # the script in the prompt is text, not markup
    expect(rows.nth(1)).to_have_attribute("data-flip", "broken")
    expect(page.locator("#flip-counts")).to_contain_text("1 fixed, 1 broken")
    expect(page.locator('[data-metric="exact_match"] .tr-better')).to_have_text("▲ +25.0 pp")
    expect(page.locator("#diff-counts")).to_contain_text("1 added")
    expect(page.locator("#diff-added")).to_contain_text("Largest ocean?")
    expect(page.locator("#compare-chart")).to_have_attribute("data-series", "2")  # one loss curve per run, drawn
    screenshot(page, "compare-runs")
