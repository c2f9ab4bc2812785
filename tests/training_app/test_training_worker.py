"""Fine-tuning runs on a real Celery worker: the tiny random SmolLM2 (same architecture and tokenizer)."""

import io
import zipfile
from datetime import datetime

import pytest

from tests.api_client import client_for
from tests.training_app.conftest import FAST, TINY, ask_playground
from tests.worker import wait_for
from training_app.models import TrainingRun

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


def test_a_worker_on_the_training_queue_imports_torch_before_it_reports_ready(celery_worker):
    log = "".join(celery_worker.log)
    assert "Imported the training stack" in log
    assert log.index("Imported the training stack") < log.index(" ready.")
