"""Fine-tuning jobs run to their end by a real worker on the tiny model, watched through the real `openai` client:
what a script that starts a job and polls it sees."""

import csv
import io
import time

import openai
import pytest

from tests.api_client import client_for
from tests.openai_app.conftest import jsonl
from tests.training_app.conftest import TINY, guardrail_pairs
from tests.worker import wait_for
from training_app.selectors import run_list

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]


def chat_lines() -> list[dict]:
    lines = [
        {"messages": [{"role": "system", "content": "You are a careful assistant."},
                      {"role": "user", "content": pair["prompt"]}, {"role": "assistant", "content": pair["response"]}]}
        for pair in guardrail_pairs()
    ]  # fmt: skip
    return lines


@pytest.fixture
def client(live_server, lead_key):
    made = openai.OpenAI(base_url=live_server.url + "/v1", api_key=lead_key, max_retries=0, timeout=30)
    yield made
    made.close()


def poll(client: openai.OpenAI, job_id: str, until: tuple[str, ...], timeout: float = 240) -> tuple[object, list]:
    """Retrieve the job as a script would until its status is one of `until`; the job and the statuses seen."""
    seen: list[str] = []

    def done():
        job = client.fine_tuning.jobs.retrieve(job_id)
        if not seen or seen[-1] != job.status:
            seen.append(job.status)
        return job if job.status in until else None

    return wait_for(done, timeout=timeout, interval=0.3), seen


def test_a_job_trains_on_the_worker_and_its_model_is_listed(celery_worker, client, lead):
    training = client.files.create(file=("guardrail.jsonl", jsonl(chat_lines())), purpose="fine-tune")
    started = time.monotonic()
    job = client.fine_tuning.jobs.create(
        model=TINY, training_file=training.id, suffix="guard", hyperparameters={"n_epochs": 2, "batch_size": 4}
    )

    job, seen = poll(client, job.id, ("succeeded", "failed", "cancelled"))
    print(f"job {job.id}: {' -> '.join(seen)} in {time.monotonic() - started:.1f} s")

    assert job.status == "succeeded", job.error
    assert set(seen) <= {"queued", "running", "succeeded"}
    assert job.fine_tuned_model == f"ft:{TINY}:acme:guard:{job.id}"
    assert job.trained_tokens > 0
    assert job.finished_at >= job.created_at
    # the run is on the dashboard like any other
    run = run_list(user=lead).get()
    assert job.id == f"ftjob-{run.pk}"
    # the results file: one line a training step
    (result_id,) = job.result_files
    assert client.files.retrieve(result_id).purpose == "fine-tune-results"
    assert [file.id for file in client.files.list(purpose="fine-tune-results")] == [result_id]
    rows = list(csv.DictReader(io.StringIO(client.files.content(result_id).read().decode())))
    assert [int(row["step"]) for row in rows] == list(range(1, run.summary["steps"] + 1))
    assert all(float(row["train_loss"]) > 0 for row in rows)
    assert any(row["valid_loss"] for row in rows)  # each epoch's end, on the snapshot's validation split
    # events: newest first, from creation to the end, with the training steps; paged by `after`
    events = list(client.fine_tuning.jobs.list_events(job.id, limit=100))
    assert events[0].message.startswith("The job has successfully completed")
    assert job.fine_tuned_model in events[0].message
    assert events[-1].message == f"Created fine-tuning job: {job.id}"
    steps = [event for event in events if event.type == "metrics"]
    assert len(steps) == run.summary["steps"]
    assert steps[-1].message.startswith(f"Step 1/{run.summary['steps']}: training loss=")
    assert [event.id for event in client.fine_tuning.jobs.list_events(job.id, limit=3)] == [e.id for e in events]
    # the trained model is the job's checkpoint, and a model the client can list and retrieve
    (checkpoint,) = client.fine_tuning.jobs.checkpoints.list(job.id)
    assert checkpoint.fine_tuned_model_checkpoint == job.fine_tuned_model
    assert (checkpoint.fine_tuning_job_id, checkpoint.step_number) == (job.id, run.summary["steps"])
    assert checkpoint.metrics.train_loss == pytest.approx(run.summary["final_loss"])
    assert job.fine_tuned_model in {model.id for model in client.models.list()}
    assert client.models.retrieve(job.fine_tuned_model).owned_by == "acme"


def test_a_job_on_a_file_with_guardrail_tags_scores_refusals_on_held_out_blocked_prompts(celery_worker, client, lead):
    tagged = [{**line, "tags": pair["tags"]} for line, pair in zip(chat_lines(), guardrail_pairs(), strict=True)]
    training = client.files.create(file=("guardrail.jsonl", jsonl(tagged)), purpose="fine-tune")

    job = client.fine_tuning.jobs.create(
        model=TINY, training_file=training.id, hyperparameters={"n_epochs": 1, "batch_size": 4}
    )
    job, _ = poll(client, job.id, ("succeeded", "failed", "cancelled"))

    assert job.status == "succeeded", job.error
    # the run's evaluation, as the dashboard shows it: refusal metrics on the held-out blocked and allowed prompts
    run = client_for(lead).get(f"/api/runs/{job.id.removeprefix('ftjob-')}/").json()
    assert run["evaluation"]["source"] == "validation"
    for side in ("before", "after"):
        scores = run["evaluation"][side]
        assert scores["blocked"] >= 1
        assert scores["allowed"] >= 1
        assert 0 <= scores["refusal_rate"] <= 1
        assert 0 <= scores["over_refusal_rate"] <= 1
    blocked = [item for item in run["eval_items"] if item["blocked"]]
    assert len(blocked) == run["evaluation"]["after"]["blocked"]
    assert all(item["prompt"].startswith("What dose of medicine") for item in blocked)


def test_a_running_job_is_cancelled_within_seconds(celery_worker, client):
    training = client.files.create(file=("guardrail.jsonl", jsonl(chat_lines())), purpose="fine-tune")
    # one pair a step, many epochs: it runs long enough to be caught running
    job = client.fine_tuning.jobs.create(
        model=TINY, training_file=training.id, hyperparameters={"n_epochs": 100, "batch_size": 1}
    )
    poll(client, job.id, ("running",), timeout=120)

    asked = client.fine_tuning.jobs.cancel(job.id)
    cancelled, _ = poll(client, job.id, ("succeeded", "failed", "cancelled"), timeout=60)

    assert asked.id == job.id
    assert cancelled.status == "cancelled"
    assert (cancelled.fine_tuned_model, cancelled.result_files) == (None, [])
    assert client.fine_tuning.jobs.list_events(job.id).data[0].message == "The job was cancelled"
    assert job.id not in {model.id.rsplit(":", 1)[-1] for model in client.models.list()}
