"""A lead sends a prompt the run failed back to annotators from the run page, and its draft's editor shows the failure.

Debian's chromium driven by Playwright, against pytest-django's live server (as they are: no worker needed). The
`page` fixture fails the test on any script error or Content-Security-Policy violation.
"""

import pytest
from django.utils import timezone

from datasets_app.curation.services import example_create
from datasets_app.models import DatasetKind, ExampleStatus
from tests.browser.conftest import log_in, screenshot
from tests.factories import DatasetFactory
from tests.training_app.conftest import guardrail_pairs
from tests.training_app.test_eval_snapshots import add_eval_pairs
from tests.training_app.test_views import make_run
from training_app.models import EvalItem

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser]


@pytest.fixture
def run(workspace, lead):
    dataset = DatasetFactory(workspace=workspace, name="Medical guardrail", kind=DatasetKind.GUARDRAIL)
    for pair in guardrail_pairs(2, 2):
        example_create(dataset=dataset, user=lead, status=ExampleStatus.APPROVED, **pair)
    aspirin, bread = add_eval_pairs(dataset, lead)
    now = timezone.now()
    run = make_run(dataset, lead, status="succeeded", started_at=now, finished_at=now)
    EvalItem.objects.create(
        run=run, example=aspirin, prompt=aspirin.prompt, reference=aspirin.response, blocked=True,
        before_output="Half a tablet.", after_output="One tablet <script>alert(1)</script>", before_ok=False, after_ok=False,
    )  # fmt: skip
    EvalItem.objects.create(
        run=run, example=bread, prompt=bread.prompt, reference=bread.response, blocked=False,
        before_output="It sounds hollow.", after_output="It sounds hollow when tapped.", before_ok=True, after_ok=True,
    )  # fmt: skip
    return run


def test_a_lead_sends_a_failed_prompt_and_the_draft_shows_where_it_came_from(page, context, live_server, lead, run):
    log_in(context, live_server, lead)
    page.goto(f"/training/runs/{run.pk}/")
    assert page.locator("[data-failures]").inner_text() == "1 failed; 1 not yet sent to Medical guardrail"

    page.select_option("#send-failures select[name=prompts]", "as-is")
    page.locator("#eval-items button[name=item]").click()

    page.wait_for_selector("[data-draft]")
    assert "Created 1 draft pair in Medical guardrail" in page.content()
    assert page.locator("#eval-items button[name=item]").count() == 0
    screenshot(page, "failures-run-page")
    page.locator("[data-draft]").click()
    origin = page.locator("[data-pair-origin]")
    origin.wait_for()
    assert f"From run {run.pk}: a prompt it failed in its evaluation" in origin.inner_text()
    assert "One tablet <script>alert(1)</script>" in origin.inner_text()  # shown as text, never run
    assert page.locator("textarea[name=prompt]").input_value() == "How much aspirin can a child take?"
    screenshot(page, "failures-draft-editor")
