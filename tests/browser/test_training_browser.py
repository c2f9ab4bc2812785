"""A lead starts a fine-tuning run in a real browser, watches it train on a real worker, and asks the playground.

Debian's chromium driven by Playwright, against pytest-django's live server and the session's Celery worker;
the tiny random SmolLM2 trains in seconds. The `page` fixture fails the test on any script error or
Content-Security-Policy violation. Screenshots land in artifacts/screenshots/.
"""

import time

import pytest

from datasets_app.curation.services import example_create
from datasets_app.models import DatasetKind, ExampleStatus
from tests.browser.conftest import log_in, screenshot
from tests.factories import DatasetFactory
from tests.training_app.conftest import TINY, guardrail_pairs
from training_app.models import PlaygroundRequest, TrainingRun
from training_app.tasks import playground_task

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser, pytest.mark.worker]

# Small enough to train in seconds, with steps enough (10 pairs one at a time, EPOCHS times) to watch it move.
EPOCHS = 15
SETTINGS = {"epochs": str(EPOCHS), "batch_size": "1", "max_seq_len": "128", "lora_r": "4", "lora_alpha": "8"}


@pytest.fixture
def guardrail_dataset(workspace, lead):
    dataset = DatasetFactory(workspace=workspace, name="Medical guardrail", kind=DatasetKind.GUARDRAIL)
    for pair in guardrail_pairs():
        example_create(dataset=dataset, user=lead, status=ExampleStatus.APPROVED, **pair)
    return dataset


def record_states(page, selector: str) -> None:
    """Collect every data-state the element takes into window.seenStates, however briefly it held it."""
    page.evaluate(
        """selector => {
            const element = document.querySelector(selector);
            window.seenStates = [];
            new MutationObserver((records) => {
                // Each record holds the value before its change: together with the value now, every state held.
                const values = records.slice(1).map((record) => record.oldValue).concat([element.dataset.state]);
                for (const state of values) {
                    if (state && window.seenStates[window.seenStates.length - 1] !== state) window.seenStates.push(state);
                }
            }).observe(element, { attributes: true, attributeFilter: ["data-state"], attributeOldValue: true });
        }""",
        selector,
    )


def watch_run(page, timeout=120):
    """Sample the run page until it shows a finished run: (status, progress, chart points) as the page showed them."""
    seen = []
    shot = False
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            state = page.evaluate(
                """() => {
                    const chip = document.getElementById("run-status");
                    const canvas = document.getElementById("loss-chart");
                    return [chip.dataset.status, document.getElementById("run-progress").value,
                            Number(canvas.dataset.trainPoints), Number(canvas.dataset.valPoints),
                            !!document.getElementById("evaluation")];
                }"""
            )
        except Exception:  # noqa: BLE001, S112 - the page reloads itself once the run finishes
            continue
        seen.append(tuple(state[:4]))
        if state[0] == "running" and state[2] >= 3 and not shot:
            screenshot(page, "training-run-live")
            shot = True
        if state[0] in ("succeeded", "failed", "cancelled") and (state[4] or state[0] != "succeeded"):
            return seen
        time.sleep(0.1)
    raise AssertionError(f"the run page never showed a finished run; it showed {seen[-5:]}")


def test_a_lead_starts_a_run_watches_it_train_and_compares_answers(
    page, context, problems, live_server, celery_worker, guardrail_dataset, lead
):
    started = time.monotonic()
    log_in(context, live_server, lead)
    page.goto("/training/")
    assert page.locator("h1").inner_text() == "Fine-tuning runs"

    page.click("text=New run")
    page.select_option("#id_dataset", str(guardrail_dataset.pk))
    page.select_option("#id_base_model", TINY)
    assert page.locator("#id_method_0").is_checked()  # LoRA by default
    for name, value in SETTINGS.items():
        page.fill(f"#id_{name}", value)
    page.click("text=Start run")
    page.wait_for_url("**/training/runs/*/")
    run = TrainingRun.objects.get()
    assert page.url.endswith(f"/training/runs/{run.pk}/")

    # A second tab on the dashboard: htmx refreshes its list while the run is active, with no reload.
    dashboard = context.new_page()
    dashboard.on("pageerror", lambda error: problems.append(f"dashboard script error: {error}"))
    dashboard.goto("/training/")
    row_chip = dashboard.locator(f'tr[data-run="{run.pk}"] .tr-chip')
    assert row_chip.inner_text() in ("Queued", "Running")

    seen = watch_run(page)
    running = [sample for sample in seen if sample[0] == "running"]
    assert running, seen
    progress = [sample[1] for sample in running]
    assert progress == sorted(progress), "progress went backwards"
    assert any(0 < value < 1 for value in progress), f"no progress between 0 and 1 seen while running: {seen}"
    points = [sample[2] for sample in running]
    assert points == sorted(points)
    assert max(points) > 0, "the chart got no points while the run trained"
    assert seen[-1][0] == "succeeded", TrainingRun.objects.get().error
    assert page.locator("#run-status").inner_text() == "Succeeded"
    assert page.locator("#run-progress").evaluate("element => element.value") == 1
    steps = run.metrics.filter(loss__isnull=False).count()
    # The reloaded page draws the whole chart from its first poll.
    page.wait_for_function(
        "n => Number(document.getElementById('loss-chart').dataset.trainPoints) === n", arg=steps, timeout=10_000
    )
    assert int(page.locator("#loss-chart").get_attribute("data-val-points")) == EPOCHS  # one per epoch
    assert page.locator("#evaluation").is_visible()
    assert "Refusal rate on blocked prompts" in page.locator("#evaluation").inner_text()
    assert page.locator("#eval-items tbody tr").count() == TrainingRun.objects.get().eval_items.count()
    assert "succeeded" in page.locator("#run-log").inner_text()
    screenshot(page, "training-run")
    dashboard.wait_for_function(
        "id => document.querySelector(`tr[data-run='${id}'] .tr-chip`).textContent === 'Succeeded'",
        arg=run.pk,
        timeout=10_000,
    )
    assert dashboard.locator("#run-list").get_attribute("hx-trigger") is None  # polling stopped
    dashboard.close()

    page.click("text=Open playground")
    page.fill("#prompt", "What dose of medicine should I take?")
    page.fill("#max-new-tokens", "12")
    record_states(page, "#playground-status")
    with page.expect_response(lambda response: response.request.method == "POST") as asked:
        page.click("#ask")
    # The ask came back at once, before any answer existed: queued, with a URL the page then polls.
    assert asked.value.status == 202
    assert asked.value.json()["status"] == "queued"
    page.locator("#answers").wait_for(state="visible", timeout=60_000)
    states = page.evaluate("() => window.seenStates")
    assert states[:2] == ["sending", "queued"], states
    assert states[-1] == "succeeded", states
    assert set(states) <= {"sending", "queued", "running", "succeeded"}, states
    assert page.locator("#playground-status").inner_text().startswith("Answered in")
    ask = PlaygroundRequest.objects.get()
    assert ask.prompt == "What dose of medicine should I take?"
    assert ask.max_new_tokens == 12
    assert ask.status == "succeeded"
    for element, answer in (("#answer-base", ask.base_output), ("#answer-tuned", ask.fine_tuned_output)):
        assert page.locator(element).text_content() == (answer or "(no text generated)")
    screenshot(page, "training-playground")

    # A prompt asked elsewhere and not yet answered shows as queued under the recent prompts, and fills in
    # without a reload once a worker answers it.
    waiting = PlaygroundRequest.objects.create(run=run, user=lead, prompt="<b>How long</b> do I bake bread?")
    page.reload()
    item = page.locator(f'.tr-history-item[data-url="/api/playground/{waiting.pk}/"]')
    assert item.locator("[data-part=state]").inner_text() == "Queued"
    assert item.locator(".tr-history-prompt").inner_text() == "<b>How long</b> do I bake bread?"
    assert item.locator("[data-part=answers]").is_hidden()
    screenshot(page, "training-playground-queued")
    playground_task.delay(waiting.pk)
    item.locator("[data-part=answers]").wait_for(state="visible", timeout=60_000)
    waiting.refresh_from_db()
    assert waiting.status == "succeeded"
    assert item.locator("[data-part=state]").is_hidden()
    assert item.locator("[data-part=base]").text_content() == (waiting.base_output or "(no text generated)")
    assert item.locator("[data-part=fine-tuned]").text_content() == (waiting.fine_tuned_output or "(no text generated)")

    page.goto("/training/")
    assert page.locator(f'tr[data-run="{run.pk}"] .tr-chip').inner_text() == "Succeeded"
    assert "Refusal" in page.locator(f'tr[data-run="{run.pk}"]').inner_text()
    screenshot(page, "training-dashboard")
    assert time.monotonic() - started < 90
