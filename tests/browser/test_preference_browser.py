"""A preference pair in a real browser: the diff follows the typing, and Alt+W swaps the answers and saves."""

import pytest
from playwright.sync_api import expect

from datasets_app.curation.services import dataset_create, example_create
from datasets_app.models import Example
from tests.browser.conftest import log_in, screenshot

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_an_annotator_edits_a_side_sees_the_diff_and_swaps_with_the_keyboard(
    page, context, live_server, workspace, lead, annotator
):
    dataset = dataset_create(workspace=workspace, user=lead, name="Preferences", kind="preference")
    pair = example_create(
        dataset=dataset, user=annotator, prompt="Can I eat raw cookie dough?",
        response="Sure, eat as much as you like.", rejected="Better not: raw flour can carry bacteria.",
    )  # fmt: skip
    log_in(context, live_server, annotator)
    page.goto(f"/examples/{pair.pk}/")
    diff = page.locator("[data-sides-diff]")
    expect(diff.locator("del")).to_contain_text(["Better not: raw flour can carry bacteria"])
    page.locator("#f-rejected").fill("Sure, but just a little.")  # the diff follows the typing (htmx)
    expect(diff.locator("del")).to_contain_text(["but just a little"])
    screenshot(page, "preference-editor", full_page=False)
    page.locator("#f-rejected").press("Alt+KeyW")  # the answers were the wrong way round: swap, and save
    expect(page.get_by_text("Swapped the chosen and the rejected answer (version 2).")).to_be_visible()
    expect(page.locator("#f-response")).to_have_value("Sure, but just a little.")
    expect(page.locator("#f-rejected")).to_have_value("Sure, eat as much as you like.")
    stored = Example.objects.get(pk=pair.pk)
    assert (stored.response, stored.rejected, stored.version) == (
        "Sure, but just a little.", "Sure, eat as much as you like.", 2,
    )  # fmt: skip
