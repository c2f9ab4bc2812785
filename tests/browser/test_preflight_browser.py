"""A lead checks a run on the New run page before starting it: totals, warnings, and a pair's coloured tokens.

Debian's chromium driven by Playwright against pytest-django's live server; the tiny random SmolLM2's tokenizer
(the real SmolLM2 chat template). No worker: the check runs in the web request and starts nothing.
"""

import pytest

from datasets_app.curation.services import example_create
from datasets_app.models import DatasetKind, ExampleStatus
from tests.browser.conftest import log_in, screenshot
from tests.factories import DatasetFactory
from tests.training_app.conftest import TINY, guardrail_pairs
from tests.training_app.test_preflight import LONG_RESPONSE
from training_app.models import DatasetVersion, TrainingRun

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser]


@pytest.fixture
def guardrail_dataset(workspace, lead):
    dataset = DatasetFactory(workspace=workspace, name="Medical guardrail", kind=DatasetKind.GUARDRAIL)
    for pair in guardrail_pairs():
        example_create(dataset=dataset, user=lead, status=ExampleStatus.APPROVED, **pair)
    return dataset


@pytest.fixture
def tiny_source():
    """The tiny model's tokenizer in this machine's cache, as a worker or `prepare_models` leaves it."""
    from training_app.execution import base_model_dir

    return base_model_dir(TINY)


def test_a_lead_checks_a_run_and_sees_a_pairs_tokens_coloured(
    page, context, live_server, guardrail_dataset, lead, tiny_source
):
    long = example_create(
        dataset=guardrail_dataset, user=lead, status=ExampleStatus.APPROVED, tags=["allowed:baking"],
        prompt="How do I make a <b>sponge</b> cake?", response=LONG_RESPONSE,
    )  # fmt: skip
    log_in(context, live_server, lead)
    page.goto("/training/runs/new/")
    page.select_option("#id_dataset", str(guardrail_dataset.pk))
    page.select_option("#id_base_model", TINY)
    page.fill("#id_max_seq_len", "128")

    page.click("#check-run")

    totals = page.locator("#preflight-totals")
    totals.wait_for()
    assert totals.locator('[data-total="pairs"]').inner_text() == str(len(guardrail_pairs()) + 1)
    assert totals.locator('[data-total="truncated"]').inner_text() == "1"
    assert totals.locator('[data-total="estimate"]').inner_text().startswith("about ")
    assert "default" in totals.locator("[data-basis]").inner_text()
    warnings = page.locator("#preflight-warnings li")
    assert "truncated" in [warnings.nth(i).get_attribute("data-code") for i in range(warnings.count())]
    rows = page.locator("#preflight-pairs tbody tr")
    assert rows.count() == len(guardrail_pairs()) + 1
    assert rows.first.get_attribute("data-example") == str(long.pk)  # the longest first

    rows.first.locator("text=Tokens").click()
    tokens = page.locator("#pair-tokens")
    tokens.wait_for()
    assert tokens.get_attribute("data-example") == str(long.pk)
    pieces = tokens.locator(".tr-tokens .tok")
    kinds = pieces.evaluate_all("spans => spans.map(span => span.classList[1])")
    assert {"tok-trained", "tok-masked", "tok-cut"} == set(kinds)
    assert kinds.count("tok-trained") + kinds.count("tok-masked") == 128
    # coloured apart, and the user's text shown as text (the <b> is not markup)
    colour = pieces.evaluate_all("spans => spans.map(span => getComputedStyle(span).backgroundColor)")
    assert colour[kinds.index("tok-trained")] != colour[kinds.index("tok-masked")]
    assert "<b>sponge</b>" in tokens.locator(".tr-tokens").inner_text()
    assert tokens.locator(".tr-tokens b").count() == 0
    screenshot(page, "training-run-check")

    assert not DatasetVersion.objects.exists()  # checking saved nothing, started nothing
    assert not TrainingRun.objects.exists()
    page.click("text=Start run")
    page.wait_for_url("**/training/runs/*/")
    assert TrainingRun.objects.count() == 1
