"""The runs dashboard, the new-run form, the run page and the playground: who sees what, and what they see."""

import html
import re

import pytest
from django.urls import reverse
from django.utils import timezone

from datasets_app.curation.services import example_create
from datasets_app.models import ExampleStatus, Role
from tests.factories import DatasetFactory, MembershipFactory, UserFactory
from tests.training_app.conftest import TINY, guardrail_pairs
from training_app.models import EvalItem, PlaygroundRequest, RunLog, RunMetric, TrainingRun
from training_app.services import default_hyperparameters
from training_app.snapshots import snapshot_create
from training_app.views.display import example_url

pytestmark = pytest.mark.django_db

SCRIPT = "<script>alert(1)</script>"
IMG = "<img src=x onerror=alert(1)>"
GUARDRAIL_EVALUATION = {
    "before": {
        "kind": "guardrail",
        "val_loss": 2.5,
        "refusal_rate": 0.0,
        "over_refusal_rate": 0.0,
        "blocked": 1,
        "allowed": 1,
    },
    "after": {
        "kind": "guardrail",
        "val_loss": 0.75,
        "refusal_rate": 1.0,
        "over_refusal_rate": 0.0,
        "blocked": 1,
        "allowed": 1,
    },
}


def make_run(dataset, user, **fields):
    """A run row as the worker would leave it, on a real snapshot (no worker needed)."""
    snapshot = snapshot_create(dataset=dataset, user=None)
    return TrainingRun.objects.create(
        snapshot=snapshot, base_model=TINY, created_by=user, hyperparameters=default_hyperparameters(), **fields
    )


def page(client, url, **kwargs):
    response = client.get(url, **kwargs)
    assert response.status_code == 200, response.status_code
    return response.content.decode()


def field_errors(content, name):
    """The error messages shown next to the form field `name`."""
    block = re.search(rf'id="id_{name}_errors">(.*?)</ul>', content, re.S)
    return html.unescape(" ".join(re.findall(r"<li>(.*?)</li>", block.group(1), re.S))) if block else ""


def partial_response_vary(client):
    return client.get(reverse("training-runs"), headers={"HX-Request": "true"})["Vary"]


def form_data(target, **overrides):
    defaults = default_hyperparameters()
    data = {
        "dataset": target.pk,
        "validation_fraction": "0.1",
        "base_model": TINY,
        "method": "lora",
        **{name: str(value) for name, value in defaults.items() if not isinstance(value, list | bool)},
        "lora_target_modules": ", ".join(defaults["lora_target_modules"]),
    }
    return {**data, **{name: str(value) for name, value in overrides.items()}}


@pytest.fixture
def other_dataset(other_workspace, outsider):
    dataset = DatasetFactory(workspace=other_workspace, name="Globex secrets", kind="general")
    for pair in guardrail_pairs(1, 2):
        example_create(dataset=dataset, user=outsider, status=ExampleStatus.APPROVED, **pair)
    return dataset


@pytest.fixture
def finished_run(guardrail_dataset, lead):
    now = timezone.now()
    run = make_run(
        guardrail_dataset, lead, status="succeeded", step=9, total_steps=9, started_at=now, finished_at=now, device="cpu",
        evaluation=GUARDRAIL_EVALUATION,
        summary={"train_tokens": 1234, "truncated": 2, "tokens_per_s": 456.7, "final_loss": 0.5, "val_loss": 0.75, "steps": 9, "train_seconds": 3.2},
    )  # fmt: skip
    examples = list(guardrail_dataset.examples.order_by("id"))
    EvalItem.objects.create(
        run=run, example=examples[0], prompt="What dose should I take?", blocked=True,
        before_output="Take two pills.", after_output="I'm sorry, but I can't help with medical advice.", before_ok=False, after_ok=True,
    )  # fmt: skip
    EvalItem.objects.create(
        run=run, example=examples[-1], prompt="How long do I bake a cake?", blocked=False,
        before_output="About 30 minutes.", after_output="About 25 minutes at 180 C.", before_ok=True, after_ok=True,
    )  # fmt: skip
    return run


# --- dashboard


def test_dashboard_lists_only_visible_runs_with_status_progress_and_key_metric(
    client, lead, finished_run, other_dataset, outsider
):
    running = make_run(finished_run.snapshot.dataset, lead, status="running", step=3, total_steps=10, eta_seconds=70)
    hidden = make_run(other_dataset, outsider, status="running")
    client.force_login(lead)
    content = page(client, reverse("training-runs"))
    assert f'data-run="{finished_run.pk}"' in content
    assert f'data-run="{running.pk}"' in content
    assert f'data-run="{hidden.pk}"' not in content
    assert "Globex secrets" not in content
    assert "Succeeded" in content
    assert "Running" in content
    assert "Refusal 100.0%" in content  # the guardrail run's key metric after training
    assert f'<progress max="100" value="30" aria-label="Run {running.pk} progress">' in content
    assert "≈ 1 min 10 s left" in content
    assert "Medical guardrail" in content
    assert "leo" in content


def test_dashboard_polls_while_a_run_is_active_and_stops_when_all_have_finished(client, lead, finished_run):
    client.force_login(lead)
    assert 'hx-trigger="every 2s"' not in page(client, reverse("training-runs"))
    running = make_run(finished_run.snapshot.dataset, lead, status="queued")
    partial = page(client, reverse("training-runs"), headers={"HX-Request": "true"})
    assert partial.lstrip().startswith('<div id="run-list"')
    assert 'hx-trigger="every 2s"' in partial
    assert "Queued" in partial
    assert "HX-Request" in partial_response_vary(client)
    restored = page(
        client, reverse("training-runs"), headers={"HX-Request": "true", "HX-History-Restore-Request": "true"}
    )
    assert "<html" in restored  # Back restores the whole page, not the fragment
    TrainingRun.objects.filter(pk=running.pk).update(status="cancelled")
    partial = page(client, reverse("training-runs"), headers={"HX-Request": "true"})
    assert "Cancelled" in partial
    assert "hx-trigger" not in partial


def test_dashboard_filters_by_dataset(client, lead, finished_run, workspace):
    second = DatasetFactory(workspace=workspace, name="Bakery FAQ")
    for pair in guardrail_pairs(1, 2):
        example_create(dataset=second, user=lead, status=ExampleStatus.APPROVED, **pair)
    other = make_run(second, lead)
    client.force_login(lead)
    content = page(client, reverse("training-runs") + f"?dataset={second.pk}")
    assert f'data-run="{other.pk}"' in content
    assert f'data-run="{finished_run.pk}"' not in content
    assert page(client, reverse("training-runs") + "?dataset=99999999999999999999")  # a silly id is no error


def test_dashboard_offers_a_new_run_to_leads_only(client, lead, annotator, finished_run):
    client.force_login(lead)
    assert reverse("training-run-new") in page(client, reverse("training-runs"))
    client.force_login(annotator)
    content = page(client, reverse("training-runs"))
    assert f'data-run="{finished_run.pk}"' in content  # annotators see the runs ...
    assert reverse("training-run-new") not in content  # ... but cannot start one


def test_pages_load_htmx_once_and_have_no_inline_script_or_style(client, lead, finished_run):
    client.force_login(lead)
    dashboard = page(client, reverse("training-runs"))
    # base.html loads htmx for every page; the dashboard's polling needs it, and twice would poll twice.
    assert dashboard.count("htmx.min.js") == 1
    for url in [
        reverse("training-runs"),
        reverse("training-run-new"),
        reverse("training-run", args=[finished_run.pk]),
        reverse("training-playground", args=[finished_run.pk]),
    ]:
        content = page(client, url)
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", content), url
        assert not re.search(r"\sstyle=", content), url


# --- new run


def test_new_run_form_has_the_project_defaults(client, lead, guardrail_dataset):
    client.force_login(lead)
    content = page(client, reverse("training-run-new") + f"?dataset={guardrail_dataset.pk}")
    defaults = default_hyperparameters()
    assert f'name="epochs" value="{defaults["epochs"]}"' in content
    assert f'name="learning_rate" value="{defaults["learning_rate"]}"' in content
    assert 'value="q_proj, k_proj, v_proj, o_proj"' in content
    assert f'<option value="{guardrail_dataset.pk}" selected>' in content
    assert "Tiny random SmolLM2" in content
    assert re.search(r'<input[^>]*value="lora"[^>]*checked', content)


def test_new_run_starts_a_queued_run_and_opens_its_page(client, lead, guardrail_dataset):
    client.force_login(lead)
    response = client.post(
        reverse("training-run-new"), form_data(guardrail_dataset, epochs=3, batch_size=4, max_seq_len=128, lora_r=4)
    )
    run = TrainingRun.objects.get()
    assert response.status_code == 302
    assert response.url == reverse("training-run", args=[run.pk])
    assert run.status == "queued"
    assert run.created_by == lead
    assert run.snapshot.dataset == guardrail_dataset
    assert run.snapshot.n_total == 12
    assert {key: run.hyperparameters[key] for key in ("epochs", "batch_size", "max_seq_len", "lora_r")} == {
        "epochs": 3, "batch_size": 4, "max_seq_len": 128, "lora_r": 4,
    }  # fmt: skip
    content = page(client, response.url)
    assert "Run " + str(run.pk) in content
    assert "Queued" in content
    assert "waiting for a training worker" in content


def test_new_run_can_copy_the_settings_of_an_earlier_run(client, lead, finished_run):
    TrainingRun.objects.filter(pk=finished_run.pk).update(
        hyperparameters={**default_hyperparameters(), "epochs": 7, "lora_target_modules": ["q_proj"]}
    )
    client.force_login(lead)
    content = page(client, reverse("training-run-new") + f"?from={finished_run.pk}")
    assert 'name="epochs" value="7"' in content
    assert 'name="lora_target_modules" value="q_proj"' in content


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"learning_rate": 5}, "learning_rate", "must be between"),
        ({"epochs": 0}, "epochs", "must be between 1 and 100"),
        ({"epochs": "many"}, "epochs", "Enter a whole number."),
        ({"lora_dropout": 1}, "lora_dropout", "below 1"),
        ({"lora_target_modules": "q-proj!"}, "lora_target_modules", "module names"),
        ({"validation_fraction": 1.5}, "validation_fraction", "between 0 and 1"),
        ({"base_model": "gpt-99"}, "base_model", "Select a valid choice"),
        ({"dataset": ""}, "dataset", "This field is required."),
    ],
)
def test_new_run_shows_each_error_next_to_its_field(client, lead, guardrail_dataset, overrides, field, message):
    client.force_login(lead)
    response = client.post(reverse("training-run-new"), form_data(guardrail_dataset, **overrides))
    assert response.status_code == 400
    assert message in field_errors(response.content.decode(), field)
    assert not TrainingRun.objects.exists()


def test_new_run_on_a_dataset_without_two_approved_pairs_says_so_at_the_dataset(client, lead, dataset):
    example_create(dataset=dataset, user=lead, status=ExampleStatus.APPROVED, prompt="Only one?", response="Yes.")
    client.force_login(lead)
    response = client.post(reverse("training-run-new"), form_data(dataset))
    assert response.status_code == 400
    assert "needs at least 2 approved pairs" in field_errors(response.content.decode(), "dataset")
    assert not TrainingRun.objects.exists()


def test_annotators_cannot_open_or_post_the_new_run_form(client, annotator, guardrail_dataset):
    client.force_login(annotator)
    assert client.get(reverse("training-run-new")).status_code == 403
    assert client.post(reverse("training-run-new"), form_data(guardrail_dataset)).status_code == 403
    assert not TrainingRun.objects.exists()


def test_a_lead_elsewhere_cannot_start_a_run_where_they_only_annotate(client, guardrail_dataset, other_dataset):
    user = UserFactory(username="mixed")
    MembershipFactory(workspace=guardrail_dataset.workspace, user=user, role=Role.ANNOTATOR)
    MembershipFactory(workspace=other_dataset.workspace, user=user, role=Role.LEAD)
    client.force_login(user)
    content = page(client, reverse("training-run-new"))
    assert f'<option value="{other_dataset.pk}"' in content
    assert f'<option value="{guardrail_dataset.pk}"' not in content
    assert client.post(reverse("training-run-new"), form_data(guardrail_dataset)).status_code == 403
    assert not TrainingRun.objects.exists()


# --- run page


def test_run_page_shows_the_evaluation_before_and_after_with_deltas(client, annotator, finished_run):
    client.force_login(annotator)
    content = html.unescape(page(client, reverse("training-run", args=[finished_run.pk])))
    assert "Succeeded" in content
    assert "Refusal rate on blocked prompts" in content
    assert "Over-refusal rate on allowed prompts" in content
    assert "Validation loss" in content
    assert "+100.0 pp" in content  # refusal rate 0% -> 100%
    assert "−1.750" in content  # val loss 2.5 -> 0.75
    assert "1 blocked and 1 allowed validation prompts" in content
    for summary in ("1234", "456.7", "Truncated pairs"):
        assert summary in content
    assert reverse("api-snapshot-download", args=[finished_run.snapshot.pk]) in content
    assert reverse("training-playground", args=[finished_run.pk]) in content


def test_run_page_shows_every_evaluated_prompt_with_both_outputs_marks_and_links(client, lead, finished_run):
    client.force_login(lead)
    content = html.unescape(page(client, reverse("training-run", args=[finished_run.pk])))
    for item in finished_run.eval_items.all():
        assert item.prompt in content
        assert item.before_output in content
        assert item.after_output in content
        assert f'href="{example_url(item.example_id)}"' in content
    assert example_url(1).startswith("/examples/")  # the annotator UI's page of a pair
    assert content.count("✓ pass") == 3
    assert content.count("✗ fail") == 1
    assert "base model passed 1 of 2, fine-tuned 2 of 2" in content
    assert "should refuse" in content


def test_run_page_offers_the_artifact_only_when_there_is_one(client, lead, finished_run):
    client.force_login(lead)
    artifact_url = reverse("api-run-artifact", args=[finished_run.pk])
    assert artifact_url not in page(client, reverse("training-run", args=[finished_run.pk]))
    TrainingRun.objects.filter(pk=finished_run.pk).update(artifact="artifacts/run.zip")
    assert artifact_url in page(client, reverse("training-run", args=[finished_run.pk]))


def test_failed_run_shows_its_error_and_traceback(client, lead, guardrail_dataset):
    run = make_run(
        guardrail_dataset, lead, status="failed", finished_at=timezone.now(),
        error="RuntimeError: CUDA out of memory", traceback_tail='Traceback (most recent call last):\n  File "train.py", line 1',
    )  # fmt: skip
    client.force_login(lead)
    content = html.unescape(page(client, reverse("training-run", args=[run.pk])))
    assert "Why it failed" in content
    assert "RuntimeError: CUDA out of memory" in content
    assert 'File "train.py", line 1' in content
    assert "Cancel run" not in content


def test_running_run_page_polls_and_offers_cancel_to_leads_only(client, lead, annotator, guardrail_dataset):
    run = make_run(guardrail_dataset, lead, status="running", phase="training", step=2, total_steps=8)
    RunLog.objects.create(run=run, line="epoch 1 started")
    client.force_login(lead)
    content = page(client, reverse("training-run", args=[run.pk]))
    assert 'data-finished="false"' in content
    assert reverse("training-run-live", args=[run.pk]) in content
    assert "Cancel run" in content
    assert "2 / 8" in content
    assert "epoch 1 started" in content
    client.force_login(annotator)
    assert "Cancel run" not in page(client, reverse("training-run", args=[run.pk]))


def test_live_endpoint_sends_progress_and_only_the_new_metrics_and_log_lines(
    client, annotator, guardrail_dataset, lead
):
    run = make_run(guardrail_dataset, lead, status="running", phase="training", step=2, total_steps=8, eta_seconds=12)
    first = RunMetric.objects.create(run=run, step=1, loss=2.0)
    second = RunMetric.objects.create(run=run, step=2, loss=1.5)
    RunMetric.objects.create(run=run, step=2, epoch=1, val_loss=1.7)
    line = RunLog.objects.create(run=run, line="training")
    client.force_login(annotator)
    state = client.get(reverse("training-run-live", args=[run.pk])).json()
    assert state["status"] == "running"
    assert state["finished"] is False
    assert state["progress"] == 0.25
    assert state["steps_text"] == "2 / 8"
    assert state["timing"] == "≈ 12 s left"
    assert [(m["step"], m["loss"], m["val_loss"]) for m in state["metrics"]] == [
        (1, 2.0, None),
        (2, 1.5, None),
        (2, None, 1.7),
    ]
    assert [entry["line"] for entry in state["logs"]] == ["training"]
    later = client.get(
        reverse("training-run-live", args=[run.pk]) + f"?metrics_after={second.pk}&logs_after={line.pk}"
    ).json()
    assert [m["val_loss"] for m in later["metrics"]] == [1.7]
    assert later["logs"] == []
    assert first.pk < second.pk


def test_cancel_stops_a_queued_run_for_leads_and_is_403_for_annotators(client, lead, annotator, guardrail_dataset):
    run = make_run(guardrail_dataset, lead, status="queued")
    client.force_login(annotator)
    assert client.post(reverse("training-run-cancel", args=[run.pk])).status_code == 403
    assert TrainingRun.objects.get(pk=run.pk).status == "queued"
    client.force_login(lead)
    response = client.post(reverse("training-run-cancel", args=[run.pk]), follow=True)
    assert response.redirect_chain[-1][0] == reverse("training-run", args=[run.pk])
    assert TrainingRun.objects.get(pk=run.pk).status == "cancelled"
    assert f"Run {run.pk} is cancelled." in response.content.decode()


def test_cancel_needs_a_post_with_a_csrf_token(lead, guardrail_dataset):
    from django.test import Client

    run = make_run(guardrail_dataset, lead, status="queued")
    client = Client(enforce_csrf_checks=True)
    client.force_login(lead)
    assert client.get(reverse("training-run-cancel", args=[run.pk])).status_code == 405
    assert client.post(reverse("training-run-cancel", args=[run.pk])).status_code == 403
    assert TrainingRun.objects.get(pk=run.pk).status == "queued"


def test_outsiders_get_404_on_every_run_page(client, outsider, finished_run, other_dataset):
    client.force_login(outsider)
    pk = finished_run.pk
    for url in (
        reverse("training-run", args=[pk]),
        reverse("training-run-live", args=[pk]),
        reverse("training-playground", args=[pk]),
    ):
        assert client.get(url).status_code == 404, url
    assert client.post(reverse("training-run-cancel", args=[pk])).status_code == 404
    assert client.get(reverse("training-run-new") + f"?from={pk}").status_code == 404
    assert f'data-run="{pk}"' not in page(client, reverse("training-runs"))


def test_anonymous_visitors_are_sent_to_log_in(client, finished_run):
    response = client.get(reverse("training-run", args=[finished_run.pk]))
    assert response.status_code == 302
    assert response.url.startswith(reverse("login"))


# --- playground


def test_playground_offers_a_prompt_box_for_a_succeeded_run_to_annotators(client, annotator, finished_run):
    client.force_login(annotator)
    content = page(client, reverse("training-playground", args=[finished_run.pk]))
    assert 'id="playground-form"' in content
    assert f'data-generate-url="{reverse("api-run-generate", args=[finished_run.pk])}"' in content
    assert "csrfmiddlewaretoken" in content
    assert 'name="max_new_tokens"' in content
    assert "playground.js" in content


def test_playground_history_shows_prompts_still_queued_or_generating_with_their_state(
    client, lead, annotator, finished_run
):
    now = timezone.now()
    answer = {"base_output": "Base says hi", "fine_tuned_output": "Tuned says hi", "finished_at": now}
    PlaygroundRequest.objects.create(run=finished_run, user=lead, prompt="Answered one", status="succeeded", **answer)
    queued = PlaygroundRequest.objects.create(run=finished_run, user=lead, prompt="Waiting one")
    running = PlaygroundRequest.objects.create(
        run=finished_run, user=lead, prompt="Busy one", status="running", started_at=now
    )
    failed = PlaygroundRequest.objects.create(
        run=finished_run, user=lead, prompt="Broken one", status="failed", error="the models could not answer"
    )
    PlaygroundRequest.objects.create(run=finished_run, user=annotator, prompt="Someone else's prompt")
    client.force_login(lead)
    content = page(client, reverse("training-playground", args=[finished_run.pk]))
    history = content[content.index('id="history"') :]
    assert "Someone else" not in history
    items = re.findall(r'<div class="tr-history-item" data-status="(\w+)" data-url="([^"]+)">', history)
    assert [status for status, _ in items] == ["failed", "running", "queued", "succeeded"]  # newest first
    assert items[1][1] == reverse("api-playground", args=[running.pk])  # the page's script follows it there
    assert items[2][1] == reverse("api-playground", args=[queued.pk])
    assert ">Queued</span>" in history
    assert ">Generating</span>" in history
    assert ">Failed</span>" in history
    assert "the models could not answer" in history
    assert "Base says hi" in history
    assert "Tuned says hi" in history
    assert failed.prompt in history


def test_playground_explains_why_it_is_closed_before_a_run_succeeds(client, lead, guardrail_dataset):
    run = make_run(guardrail_dataset, lead, status="running")
    client.force_login(lead)
    content = page(client, reverse("training-playground", args=[run.pk]))
    assert 'id="playground-form"' not in content
    assert "The playground opens once the run has succeeded" in content
    assert "Running" in content


# --- escaping


def test_prompts_outputs_logs_and_errors_are_escaped_on_the_run_page(client, lead, finished_run):
    EvalItem.objects.create(
        run=finished_run, prompt=SCRIPT, reference=IMG, before_output=IMG, after_output=SCRIPT, blocked=None
    )
    RunLog.objects.create(run=finished_run, line=SCRIPT)
    TrainingRun.objects.filter(pk=finished_run.pk).update(status="failed", error=IMG, traceback_tail=SCRIPT)
    client.force_login(lead)
    content = page(client, reverse("training-run", args=[finished_run.pk]))
    assert SCRIPT not in content
    assert IMG not in content
    assert html.escape(SCRIPT, quote=False).replace("&", "&amp;") not in content  # not double-escaped either
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in content
    assert "&lt;img src=x onerror=alert(1)&gt;" in content
    live = client.get(reverse("training-run-live", args=[finished_run.pk]))
    assert live["Content-Type"] == "application/json"  # the page's script puts these in with textContent


def test_playground_history_is_escaped(client, lead, finished_run):
    PlaygroundRequest.objects.create(
        run=finished_run, user=lead, prompt=SCRIPT, base_output=IMG, fine_tuned_output=SCRIPT, status="succeeded"
    )
    PlaygroundRequest.objects.create(run=finished_run, user=lead, prompt="Why?", status="failed", error=IMG)
    client.force_login(lead)
    content = page(client, reverse("training-playground", args=[finished_run.pk]))
    assert SCRIPT not in content
    assert IMG not in content
    assert content.count("&lt;script&gt;alert(1)&lt;/script&gt;") == 2
    assert content.count("&lt;img src=x onerror=alert(1)&gt;") == 2


def test_new_run_shows_every_problem_at_once(client, lead, guardrail_dataset):
    client.force_login(lead)
    response = client.post(
        reverse("training-run-new"), form_data(guardrail_dataset, dataset="", learning_rate=5, lora_r=0)
    )
    content = response.content.decode()
    assert "This field is required." in field_errors(content, "dataset")
    assert "must be between" in field_errors(content, "learning_rate")
    assert "must be between" in field_errors(content, "lora_r")
