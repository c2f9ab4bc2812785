"""Runs outlive their workers: a worker SIGKILLed mid-run leaves a checkpoint in storage, the sweeper queues the run
again, and another worker resumes it from that step to success, ending where an uninterrupted run ends; out of
memory, a run retries with smaller forward passes and trains the same steps."""

import os
import signal
from datetime import timedelta

import pytest
from django.core.files.storage import default_storage

from tests.api_client import client_for
from tests.training_app.conftest import FAST, TINY
from tests.training_app.test_training_worker import watch
from tests.worker import WorkerProcess, wait_for
from training_app.models import TrainingRun
from training_app.services import run_sweep
from training_app.snapshots import snapshot_create
from training_app.tasks import run_training_task

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]

LONG = {**FAST, "epochs": 8, "batch_size": 2, "seed": 7}
EVERY_3_STEPS = {"RUN_CHECKPOINT_EVERY_STEPS": "3"}


def queued_run(snapshot, lead, method="lora", **hyperparameters):
    return TrainingRun.objects.create(
        snapshot=snapshot, base_model=TINY, method=method, hyperparameters={**LONG, **hyperparameters}, created_by=lead
    )


def losses(api, run_id):
    return [(m["step"], m["loss"]) for m in api.get(f"/api/runs/{run_id}/metrics/").json() if m["loss"] is not None]


def test_a_killed_worker_s_run_resumes_on_another_worker_from_its_checkpoint(
    celery_worker, guardrail_dataset, lead, client
):
    api = client_for(lead)
    snapshot = snapshot_create(dataset=guardrail_dataset, user=lead)
    run = queued_run(snapshot, lead)
    doomed = WorkerProcess("doomed-training", env=EVERY_3_STEPS)
    try:
        run_training_task.apply_async(args=[run.pk], queue="doomed-training")

        def past_a_checkpoint():
            current = TrainingRun.objects.get(pk=run.pk)
            return current.checkpoints and current.step >= current.checkpoints[-1]["step"] + 2 and current

        at_kill = wait_for(past_a_checkpoint, timeout=180, interval=0.05)
        os.kill(doomed.process.pid, signal.SIGKILL)
        doomed.process.wait(timeout=30)
    finally:
        doomed.stop()
    saved = at_kill.checkpoints[-1]
    assert default_storage.exists(saved["file"])
    assert len(at_kill.checkpoints) <= 2  # the last two are kept

    # The periodic sweeper (every 15 s, 60 s timeout in production) is run here with a short timeout; it queues the
    # run again and the session's worker (another machine, as far as the run can tell) takes it.
    wait_for(lambda: run_sweep(timeout=timedelta(seconds=3)), timeout=30, interval=0.5)
    _, body = watch(api, run.pk, timeout=240)
    assert body["status"] == "succeeded", body["error"]

    first, second = body["attempts"]
    assert first["outcome"] == "worker lost"
    assert "stopped responding" in first["reason"]
    assert second["outcome"] == "succeeded"
    assert second["from_step"] == saved["step"]  # not from 0
    assert body["attempt"] == 2
    steps = [step for step, _ in losses(api, run.pk)]
    assert steps == list(range(1, body["total_steps"] + 1))  # one history: no step twice, none missing
    lines = [line["line"] for line in api.get(f"/api/runs/{run.pk}/logs/").json()]
    assert f"attempt 2 resumes from the checkpoint of step {saved['step']}" in lines
    assert not default_storage.exists(saved["file"])  # a finished run keeps no checkpoints
    client.force_login(lead)
    page = client.get(f"/training/runs/{run.pk}/").content.decode()
    assert 'data-attempt="1" data-outcome="worker lost"' in page
    assert 'data-attempt="2" data-outcome="succeeded"' in page

    # The same run uninterrupted, same seed: the same losses, step for step.
    whole = queued_run(snapshot, lead)
    run_training_task.apply_async(args=[whole.pk], queue="training")
    _, uninterrupted = watch(api, whole.pk, timeout=240)
    assert uninterrupted["summary"]["final_loss"] == pytest.approx(body["summary"]["final_loss"], rel=1e-3)
    assert [loss for _, loss in losses(api, run.pk)] == pytest.approx(
        [loss for _, loss in losses(api, whole.pk)], rel=1e-3
    )


def test_out_of_memory_retries_with_smaller_passes_down_to_one_and_then_says_it_does_not_fit(
    celery_worker, guardrail_dataset, lead
):
    api = client_for(lead)
    snapshot = snapshot_create(dataset=guardrail_dataset, user=lead)
    # The injected fault: any forward pass of more than 1 example runs out of memory on this worker.
    small = WorkerProcess("small-training", env={**EVERY_3_STEPS, "RUN_FAULT_OOM_ABOVE": "1"})
    try:
        fits = queued_run(snapshot, lead, epochs=2, batch_size=4)
        run_training_task.apply_async(args=[fits.pk], queue="small-training")
        _, body = watch(api, fits.pk, timeout=240)
    finally:
        small.stop()
    assert body["status"] == "succeeded", body["error"]
    assert body["micro_batch"] == 1
    assert [a["outcome"] for a in body["attempts"]] == ["out of memory", "out of memory", "succeeded"]
    lines = [line["line"] for line in api.get(f"/api/runs/{fits.pk}/logs/").json()]
    assert any("out of memory at 4 examples per forward pass" in line and "with 2 per pass" in line for line in lines)
    assert any("the effective batch (4) and the results stay the same" in line for line in lines)

    whole = queued_run(snapshot, lead, epochs=2, batch_size=4)
    run_training_task.apply_async(args=[whole.pk], queue="training")
    _, uninterrupted = watch(api, whole.pk, timeout=240)
    assert [loss for _, loss in losses(api, fits.pk)] == pytest.approx(
        [loss for _, loss in losses(api, whole.pk)], rel=1e-3
    )


def test_a_run_that_does_not_fit_one_example_per_pass_fails_saying_so(celery_worker, guardrail_dataset, lead):
    api = client_for(lead)
    snapshot = snapshot_create(dataset=guardrail_dataset, user=lead)
    tiny = WorkerProcess("tiny-training", env={"RUN_MAX_RSS_MB": "1"})  # no process fits in 1 MiB
    try:
        run = queued_run(snapshot, lead, epochs=1, batch_size=2)
        run_training_task.apply_async(args=[run.pk], queue="tiny-training")
        _, body = watch(api, run.pk, timeout=240)
    finally:
        tiny.stop()
    assert body["status"] == "failed"
    assert "out of memory with one example per forward pass" in body["error"]
    assert "over its cap of 1 MiB" in body["error"]
    assert [a["outcome"] for a in body["attempts"]] == ["out of memory", "failed"]


def test_a_run_trains_on_two_processes_and_stops_on_cancel(celery_worker, guardrail_dataset, lead):
    api = client_for(lead)
    snapshot = snapshot_create(dataset=guardrail_dataset, user=lead)
    pair = WorkerProcess("pair-training", env={"INSTRUCTORY_TRAIN_PROCESSES": "2", **EVERY_3_STEPS})
    try:
        run = queued_run(snapshot, lead, epochs=2)
        run_training_task.apply_async(args=[run.pk], queue="pair-training")
        _, body = watch(api, run.pk, timeout=240)
        assert body["status"] == "succeeded", body["error"]
        assert [step for step, _ in losses(api, run.pk)] == list(range(1, body["total_steps"] + 1))  # rank 0 alone
        lines = [line["line"] for line in api.get(f"/api/runs/{run.pk}/logs/").json()]
        assert "training with 2 processes (data parallel); the first one reports" in lines
        assert api.get(body["artifact_url"]).status_code == 200

        full = queued_run(snapshot, lead, epochs=2, method="full")  # sharded over the two (FSDP)
        run_training_task.apply_async(args=[full.pk], queue="pair-training")
        _, body = watch(api, full.pk, timeout=240)
        assert body["status"] == "succeeded", body["error"]
        lines = [line["line"] for line in api.get(f"/api/runs/{full.pk}/logs/").json()]
        assert any(line.startswith("sharded over 2 processes (FSDP)") for line in lines)
        assert "checkpoint of step 3 saved" in lines  # gathered from both processes
        assert api.get(body["artifact_url"]).status_code == 200  # evaluated after: it loads

        long = queued_run(snapshot, lead, epochs=60)
        run_training_task.apply_async(args=[long.pk], queue="pair-training")
        wait_for(lambda: TrainingRun.objects.get(pk=long.pk).step >= 2, timeout=180, interval=0.1)
        assert api.post(f"/api/runs/{long.pk}/cancel/").status_code == 200
        _, cancelled = watch(api, long.pk, timeout=60)
        assert cancelled["status"] == "cancelled"
        assert cancelled["step"] < cancelled["total_steps"]
    finally:
        pair.stop()
