"""Fine-tuning runs on a real Celery worker: the tiny random SmolLM2 (same architecture and tokenizer)."""

import io
import os
import signal
import zipfile
from datetime import datetime, timedelta

import pytest
from django.conf import settings

from tests.api_client import client_for
from tests.training_app.conftest import FAST, TINY, ask_playground
from tests.worker import WorkerProcess, wait_for
from training_app.models import TrainingRun
from training_app.services import run_sweep
from training_app.snapshots import snapshot_create
from training_app.tasks import run_training_task

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]


def watch(api, run_id, until=("succeeded", "failed", "cancelled"), timeout=240):
    """Poll the run like the dashboard does; returns the statuses seen and the final body."""
    seen = []

    def check():
        body = api.get(f"/api/runs/{run_id}/").json()
        if not seen or seen[-1] != body["status"]:
            seen.append(body["status"])
        return body if body["status"] in until else None

    return seen, wait_for(check, timeout=timeout, interval=0.1)


def test_run_trains_records_metrics_and_leaves_a_loadable_artifact(celery_worker, guardrail_dataset, lead, tmp_path):
    api = client_for(lead)
    created = api.post(
        "/api/runs/", {"dataset": guardrail_dataset.pk, "base_model": TINY, "hyperparameters": FAST}, format="json"
    )
    assert created.status_code == 201, created.json()
    run_id = created.json()["id"]
    seen, run = watch(api, run_id)
    assert run["status"] == "succeeded", run["error"] + run["traceback_tail"]
    assert created.json()["status"] == "queued"
    # a warm worker may claim the run before the first poll: the statuses seen only ever move forward
    assert seen == [status for status in ("queued", "running", "succeeded") if status in seen]
    moments = [
        datetime.fromisoformat(run[name]) for name in ("queued_at", "started_at", "first_step_at", "finished_at")
    ]
    assert moments == sorted(moments)
    assert run["step"] == run["total_steps"] > 0
    assert run["summary"]["train_tokens"] > 0
    assert set(run["evaluation"]) == {"source", "before", "after"}
    assert run["evaluation"]["source"] == "validation"  # the dataset has no evaluation set
    assert run["evaluation"]["after"]["val_loss"] is not None
    assert len(run["eval_items"]) == run["evaluation"]["after"]["blocked"] + run["evaluation"]["after"]["allowed"]

    metrics = api.get(f"/api/runs/{run_id}/metrics/").json()
    steps = [m for m in metrics if m["loss"] is not None]
    assert len(steps) == run["total_steps"]
    assert all(m["learning_rate"] is not None and m["tokens_per_s"] > 0 for m in steps)
    assert sum(m["val_loss"] is not None for m in metrics) == FAST["epochs"]
    logs = [line["line"] for line in api.get(f"/api/runs/{run_id}/logs/").json()]
    assert logs[-1] == "succeeded"

    archive = zipfile.ZipFile(io.BytesIO(b"".join(api.get(f"/api/runs/{run_id}/artifact/").streaming_content)))
    assert {"adapter_model.safetensors", "adapter_config.json", "instructory_run.json"} <= set(archive.namelist())
    archive.extractall(tmp_path)
    from training_app.execution import base_model_dir
    from training_app.ml.registry import load_model

    model, tokenizer = load_model(base_model_dir(TINY), adapter_dir=tmp_path)
    assert model.peft_config

    seen, answer = ask_playground(api, run_id, "What dose should I take?", max_new_tokens=8)
    assert answer["status"] == "succeeded", answer["error"]
    assert seen == [status for status in ("queued", "running", "succeeded") if status in seen]
    assert isinstance(answer["base"], str)
    assert isinstance(answer["fine_tuned"], str)
    assert answer["error"] is None
    _, again = ask_playground(api, run_id, "What dose should I take?", max_new_tokens=8)
    assert (again["base"], again["fine_tuned"]) == (answer["base"], answer["fine_tuned"])  # greedy: reproducible


def test_cancel_stops_a_running_run_and_keeps_its_metrics(celery_worker, guardrail_dataset, lead):
    api = client_for(lead)
    long = {**FAST, "epochs": 60}
    run_id = api.post(
        "/api/runs/", {"dataset": guardrail_dataset.pk, "base_model": TINY, "hyperparameters": long}, format="json"
    ).json()["id"]
    wait_for(lambda: TrainingRun.objects.get(pk=run_id).step >= 2, timeout=180, interval=0.1)
    assert api.post(f"/api/runs/{run_id}/cancel/").status_code == 200
    _, run = watch(api, run_id, timeout=20)
    assert run["status"] == "cancelled"
    assert run["step"] < run["total_steps"]
    assert len([m for m in api.get(f"/api/runs/{run_id}/metrics/").json() if m["loss"] is not None]) >= 2


def test_a_killed_worker_leaves_the_run_failed_with_a_clear_message(celery_worker, guardrail_dataset, lead):
    # Queued straight to a worker of its own (run_create would offer it to the session's worker too).
    snapshot = snapshot_create(dataset=guardrail_dataset, user=lead)
    run = TrainingRun.objects.create(
        snapshot=snapshot, base_model=TINY, hyperparameters={**FAST, "epochs": 60}, created_by=lead
    )
    doomed = WorkerProcess("doomed-training")
    try:
        run_training_task.apply_async(args=[run.pk], queue="doomed-training")
        wait_for(lambda: TrainingRun.objects.get(pk=run.pk).step >= 1, timeout=180, interval=0.1)
        os.kill(doomed.process.pid, signal.SIGKILL)
        doomed.process.wait(timeout=30)
    finally:
        doomed.stop()
    assert TrainingRun.objects.get(pk=run.pk).status == "running"
    # The periodic sweeper (every 15 s, 60 s timeout in production) is run here with a short timeout.
    wait_for(lambda: run_sweep(timeout=timedelta(seconds=3)), timeout=30, interval=0.5)
    run.refresh_from_db()
    assert run.status == "failed"
    assert "stopped responding" in run.error
    assert run.metrics.exists()
    assert settings.CELERY_BEAT_SCHEDULE["sweep-stale-runs"]["schedule"] <= 30


def test_a_worker_on_the_training_queue_imports_torch_before_it_reports_ready(celery_worker):
    log = "".join(celery_worker.log)
    assert "Imported the training stack" in log
    assert log.index("Imported the training stack") < log.index(" ready.")
