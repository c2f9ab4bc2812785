"""A lead builds a guardrail template in a real browser, previews it (unsaved edits too) against a dataset and
generates the pairs."""

import re

import pytest
from playwright.sync_api import expect

from datasets_app.curation.services import example_create
from datasets_app.models import Example, Template
from tests.browser.conftest import log_in, screenshot
from tests.factories import DatasetFactory, MembershipFactory, UserFactory, WorkspaceFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
SYSTEM = "You are Acme Kitchen's assistant."


@pytest.fixture
def kitchen(db):
    workspace = WorkspaceFactory(name="Acme Kitchen")
    lead = UserFactory(username="leo")
    MembershipFactory(workspace=workspace, user=lead, role="lead")
    dataset = DatasetFactory(workspace=workspace, name="Support assistant guardrails")
    # The new template's example seed is already in the dataset: the preview marks it and generating skips it.
    example_create(
        dataset=dataset, user=lead, system_prompt=SYSTEM, prompt="What's the right dose of ibuprofen?", response=""
    )
    return {"workspace": workspace, "lead": lead, "dataset": dataset}


def test_lead_builds_previews_and_generates_a_guardrail_template(page, context, live_server, kitchen):
    log_in(context, live_server, kitchen["lead"])
    page.goto("/")
    page.get_by_role("link", name="Templates", exact=True).click()
    page.get_by_role("link", name="New template").click()
    page.get_by_label("Name").fill("Kitchen guardrails")
    page.get_by_label("Guardrail").check()
    page.get_by_role("button", name="Create template").click()
    expect(page.locator(".messages")).to_contain_text("Created Kitchen guardrails")

    # a second blocked topic with two seeds; what is typed survives adding the next topic
    page.get_by_role("button", name="Add a blocked topic").click()
    page.locator("#f-blocked-1-name").fill("investment-advice")
    page.locator("#f-blocked-1-label").fill("investment advice")
    page.locator("#f-blocked-1-redirect").fill("A licensed financial adviser can help.")
    page.locator("#f-blocked-1-seeds").fill("Should I buy Tesla stock?\nIs bitcoin a good investment?")
    page.get_by_role("button", name="Add an allowed topic").click()
    expect(page.locator("#f-blocked-1-seeds")).to_have_value("Should I buy Tesla stock?\nIs bitcoin a good investment?")
    page.locator("#f-allowed-1-name").fill("baking")
    page.locator("#f-allowed-1-seeds").fill("Why did my cake sink in the middle?")
    page.locator("#f-refusal").fill("Sorry, I can't help with {topic}. {redirect}")
    screenshot(page, "template-edit")
    page.get_by_role("button", name="Save template").click()
    expect(page.locator(".messages")).to_contain_text("Saved Kitchen guardrails (version 2).")
    template = Template.objects.get(name="Kitchen guardrails")
    assert [topic["name"] for topic in template.spec["blocked"]] == ["medical-advice", "investment-advice"]
    assert template.spec["allowed"][1]["seeds"] == ["Why did my cake sink in the middle?"]

    # preview unsaved edits: the form as typed is previewed, and nothing is saved
    page.get_by_label("Dataset").select_option(label="Support assistant guardrails")
    page.locator("#f-allowed-1-seeds").fill("Why did my cake sink in the middle?\nHow do I temper chocolate?")
    page.get_by_role("button", name="Preview edits").click()
    expect(page.locator("#preview [data-preview-unsaved]")).to_be_visible()
    expect(page.locator("#preview [data-preview-row]")).to_have_count(6)
    expect(page.locator("#preview")).to_contain_text("How do I temper chocolate?")
    screenshot(page, "template-preview-edits")
    assert "temper" not in str(Template.objects.get(pk=template.pk).spec)
    page.goto(f"/templates/{template.pk}/")

    # preview against the dataset: the refusals rendered, the existing prompt marked (an htmx partial)
    page.get_by_label("Dataset").select_option(label="Support assistant guardrails")
    page.get_by_role("button", name="Preview", exact=True).click()
    preview = page.locator("#preview")
    expect(preview.locator("[data-preview-row]")).to_have_count(5)
    expect(preview).to_contain_text(
        "Sorry, I can't help with investment advice. A licensed financial adviser can help."
    )
    expect(preview.locator("tr", has_text="What's the right dose of ibuprofen?")).to_contain_text(
        "already in the dataset"
    )
    expect(preview.locator("tr", has_text="Why did my cake sink")).to_contain_text("left for an annotator")
    expect(preview).to_contain_text("4 new pairs")
    expect(page).to_have_url(re.compile(rf"/templates/{template.pk}/$"))  # a partial, not a new page
    screenshot(page, "template-preview")

    # generate without a model: the new pairs are in the dataset
    page.get_by_role("button", name="Generate", exact=True).click()
    expect(page.locator(".messages")).to_contain_text("Generated 4 new pairs from Kitchen guardrails")
    expect(page.locator("h1")).to_have_text("Support assistant guardrails")
    expect(page.locator("[data-row]")).to_have_count(4)
    expect(page.locator("[data-row]", has_text="Is bitcoin a good investment?")).to_contain_text(
        "Sorry, I can't help with investment advice."
    )
    screenshot(page, "template-generated")
    assert Example.objects.filter(dataset=kitchen["dataset"]).count() == 5
