"""Run creation, validation and the sweeper, without a worker."""

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from datasets_app.errors import NotAllowed
from tests.api_client import client_for
from tests.training_app.conftest import FAST, TINY
from training_app.models import TrainingRun
from training_app.services import run_cancel, run_create, run_sweep
from training_app.snapshots import snapshot_create

pytestmark = pytest.mark.django_db


def test_bad_hyperparameters_are_refused_before_queueing(guardrail_dataset, lead):
    bad = {"learning_rate": -1, "epochs": 0, "lora_r": "big"}
    response = client_for(lead).post(
        "/api/runs/", {"dataset": guardrail_dataset.pk, "base_model": TINY, "hyperparameters": bad}, format="json"
    )
    assert response.status_code == 400
    assert {"hyperparameters.learning_rate", "hyperparameters.epochs", "hyperparameters.lora_r"} <= set(response.json())
    assert not TrainingRun.objects.exists()


def test_unknown_base_model_and_method_are_400(guardrail_dataset, lead):
    response = client_for(lead).post(
        "/api/runs/", {"dataset": guardrail_dataset.pk, "base_model": "gpt-99", "method": "magic"}, format="json"
    )
    assert response.status_code == 400
    assert {"base_model", "method"} <= set(response.json())


def test_only_leads_start_runs_and_outsiders_see_nothing(guardrail_dataset, annotator, outsider, lead):
    with pytest.raises(NotAllowed):
        run_create(user=annotator, dataset=guardrail_dataset, base_model=TINY)
    assert client_for(annotator).post("/api/runs/", {"dataset": guardrail_dataset.pk}, format="json").status_code == 403
    assert client_for(outsider).post("/api/runs/", {"dataset": guardrail_dataset.pk}, format="json").status_code == 404
    run = run_create(user=lead, dataset=guardrail_dataset, base_model=TINY, hyperparameters=FAST)
    assert client_for(outsider).get(f"/api/runs/{run.pk}/").status_code == 404
    assert client_for(outsider).get("/api/runs/").json() == []
    assert client_for(annotator).get(f"/api/runs/{run.pk}/").json()["status"] == "queued"


def test_a_run_snapshots_the_dataset_and_keeps_defaults(guardrail_dataset, lead):
    run = run_create(user=lead, dataset=guardrail_dataset, base_model=TINY, hyperparameters={"epochs": 1})
    assert run.snapshot.n_total == 12
    assert run.hyperparameters["epochs"] == 1
    assert run.hyperparameters["learning_rate"] > 0
    assert run.status == "queued"


def test_cancelling_a_queued_run_ends_it_at_once(guardrail_dataset, lead):
    run = run_create(user=lead, dataset=guardrail_dataset, base_model=TINY)
    assert run_cancel(run=run, user=lead).status == "cancelled"


def test_sweeper_queues_a_run_whose_heartbeat_stopped_again_until_its_attempts_are_spent(guardrail_dataset, lead):
    dead = run_create(user=lead, dataset=guardrail_dataset, base_model=TINY)
    alive = run_create(user=lead, dataset=guardrail_dataset, base_model=TINY)
    assert dead.max_attempts == 3
    TrainingRun.objects.filter(pk=alive.pk).update(status="running", heartbeat_at=timezone.now() - timedelta(seconds=5))
    for attempt in (1, 2, 3):
        TrainingRun.objects.filter(pk=dead.pk).update(
            status="running", attempt=attempt, worker=f"box-{attempt}", step=attempt * 10,
            heartbeat_at=timezone.now() - timedelta(seconds=61),
            attempts=[*TrainingRun.objects.get(pk=dead.pk).attempts, {"number": attempt, "worker": f"box-{attempt}",
                      "started_at": timezone.now().isoformat(), "from_step": 0}],
        )  # fmt: skip
        assert run_sweep() == 1
        dead.refresh_from_db()
        if attempt < 3:
            assert dead.status == "queued"
            assert dead.phase == f"queued again for attempt {attempt + 1} of 3"
            assert dead.dispatched_at is None  # the dispatcher sends it again, should the send on commit fail
    assert dead.status == "failed"
    assert "every one of its 3 attempts lost its worker" in dead.error
    assert "attempt 2 on box-2: steps 0 to 20, box-2 stopped responding" in dead.error
    assert [a["outcome"] for a in dead.attempts] == ["worker lost"] * 3
    alive.refresh_from_db()
    assert alive.status == "running"


def test_runs_need_a_snapshot_or_dataset_not_both(guardrail_dataset, lead):
    api = client_for(lead)
    # neither
    assert api.post("/api/runs/", {}, format="json").status_code == 400
    with pytest.raises(ValidationError):
        run_create(user=lead)
    # both: refused, naming both fields, before a run is queued or another snapshot is made
    snapshot = snapshot_create(dataset=guardrail_dataset, user=lead)
    both = {"snapshot": snapshot.pk, "dataset": guardrail_dataset.pk, "base_model": TINY}
    response = api.post("/api/runs/", both, format="json")
    assert response.status_code == 400
    assert "give exactly one of snapshot or dataset" in str(response.json())
    with pytest.raises(ValidationError) as refused:
        run_create(user=lead, snapshot=snapshot, dataset=guardrail_dataset, base_model=TINY)
    assert refused.value.message_dict == {
        "snapshot": ["give a snapshot or a dataset, not both"],
        "dataset": ["give a snapshot or a dataset, not both"],
    }
    assert not TrainingRun.objects.exists()
    assert guardrail_dataset.versions.count() == 1
