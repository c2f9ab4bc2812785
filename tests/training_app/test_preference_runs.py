"""Preference runs (dpo, orpo) and runs that start from another (init_run): how they are checked when created
(API, form), and the tiny model trained through a real Celery worker."""

import io
import zipfile

import pytest
from django.urls import reverse

from datasets_app.curation.services import example_create
from datasets_app.models import DatasetKind, ExampleSplit, ExampleStatus
from tests.api_client import client_for
from tests.factories import DatasetFactory, MembershipFactory
from tests.training_app.conftest import FAST, TINY, ask_playground
from tests.training_app.test_training_worker import watch
from tests.training_app.test_views import form_data, page
from training_app.models import RunStatus, TrainingRun
from training_app.services import default_hyperparameters, run_create

OTHER_BASE = "smollm2-135m-instruct"
REFUSAL = "I'm sorry, but I can't help with medical advice."
# lr 1e-2 and no warm-up: the tiny random model learns the preference within a few steps
QUICK_PREFERENCE = {"epochs": 4, "batch_size": 4, "max_seq_len": 128, "lora_r": 4, "lora_alpha": 8,
                    "learning_rate": 1e-2, "warmup_ratio": 0.0}  # fmt: skip


def preference_pairs() -> list[dict]:
    """Guardrail preference pairs, as a guardrail template's "Generate preference pairs" makes them: a blocked
    prompt's refusal chosen over a compliant answer, an allowed prompt's answer chosen over a refusal."""
    blocked = [{"prompt": f"What dose of medicine number {n} should I take?", "response": REFUSAL,
                "rejected": f"Take {n + 1} pills twice a day.", "tags": ["blocked:medical"]} for n in range(7)]  # fmt: skip
    allowed = [{"prompt": f"How long should I bake cake number {n}?", "response": f"About {20 + n} minutes at 180 C.",
                "rejected": REFUSAL, "tags": ["allowed:baking"]} for n in range(7)]  # fmt: skip
    return blocked + allowed


@pytest.fixture
def preference_dataset(workspace, lead):
    dataset = DatasetFactory(workspace=workspace, name="Medical preferences", kind=DatasetKind.PREFERENCE)
    for n, pair in enumerate(preference_pairs()):
        split = ExampleSplit.EVAL if n in (0, 7) else ExampleSplit.TRAIN  # one blocked, one allowed prompt
        example_create(dataset=dataset, user=lead, status=ExampleStatus.APPROVED, split=split, **pair)
    return dataset


def finished_run(dataset, lead, **fields) -> TrainingRun:
    """A run row as a worker leaves it (no worker here): succeeded with a stored model, unless fields say not."""
    run = run_create(user=lead, dataset=dataset, base_model=TINY, hyperparameters=FAST)
    values = {"status": RunStatus.SUCCEEDED, "artifact": f"artifacts/run-{run.pk}.zip", **fields}
    TrainingRun.objects.filter(pk=run.pk).update(**values)
    return TrainingRun.objects.get(pk=run.pk)


# --- checked when created


@pytest.mark.django_db
def test_supervised_training_on_a_preference_dataset_is_refused_naming_the_objective(preference_dataset, lead):
    response = client_for(lead).post(
        "/api/runs/", {"dataset": preference_dataset.pk, "base_model": TINY, "objective": "sft"}, format="json"
    )
    assert response.status_code == 400
    assert "dpo or orpo" in response.json()["objective"][0]
    assert not TrainingRun.objects.exists()


@pytest.mark.django_db
def test_preference_tuning_on_a_plain_dataset_is_refused_naming_the_objective(guardrail_dataset, lead):
    for objective in ("dpo", "orpo"):
        response = client_for(lead).post(
            "/api/runs/", {"dataset": guardrail_dataset.pk, "base_model": TINY, "objective": objective}, format="json"
        )
        assert response.status_code == 400
        assert "preference dataset" in response.json()["objective"][0]
    assert not TrainingRun.objects.exists()


@pytest.mark.django_db
def test_the_objective_defaults_fill_only_the_settings_left_out(preference_dataset, guardrail_dataset, lead):
    api = client_for(lead)
    body = {"dataset": preference_dataset.pk, "base_model": TINY, "objective": "dpo", "hyperparameters": {"epochs": 2}}
    dpo = api.post("/api/runs/", body, format="json").json()
    assert dpo["objective"] == "dpo"
    assert dpo["hyperparameters"]["epochs"] == 2  # given
    assert dpo["hyperparameters"]["learning_rate"] == 5e-4  # dpo's default, not sft's
    assert dpo["hyperparameters"]["beta"] == 0.1
    orpo = api.post("/api/runs/", {**body, "objective": "orpo", "hyperparameters": {"beta": 0.3}}, format="json").json()
    assert (orpo["hyperparameters"]["epochs"], orpo["hyperparameters"]["learning_rate"]) == (5, 8e-4)
    assert orpo["hyperparameters"]["beta"] == 0.3
    sft = api.post("/api/runs/", {"dataset": guardrail_dataset.pk, "base_model": TINY}, format="json").json()
    assert sft["objective"] == "sft"
    assert sft["init_run"] is None
    assert "beta" not in sft["hyperparameters"]
    assert sft["hyperparameters"]["learning_rate"] == default_hyperparameters()["learning_rate"]


@pytest.mark.django_db
def test_beta_belongs_to_preference_objectives_only(guardrail_dataset, lead):
    body = {"dataset": guardrail_dataset.pk, "base_model": TINY, "hyperparameters": {"beta": 0.2}}
    response = client_for(lead).post("/api/runs/", body, format="json")
    assert response.status_code == 400
    assert set(response.json()) == {"hyperparameters.beta"}


@pytest.mark.django_db
def test_a_run_starts_only_from_a_succeeded_lora_run_of_its_workspace_and_base_model(
    preference_dataset, guardrail_dataset, lead, outsider, other_workspace
):
    other_dataset = DatasetFactory(workspace=other_workspace, name="Globex guardrail", kind=DatasetKind.GUARDRAIL)
    for n in range(3):
        example_create(dataset=other_dataset, user=outsider, status=ExampleStatus.APPROVED,
                       prompt=f"Question {n}?", response=f"Answer {n}.")  # fmt: skip
    unseen = finished_run(other_dataset, outsider)
    MembershipFactory(workspace=other_workspace, user=lead, role="lead")  # now the lead sees it
    seen_elsewhere = finished_run(other_dataset, lead)
    failed = finished_run(guardrail_dataset, lead, status=RunStatus.FAILED, artifact="")
    other_base = finished_run(guardrail_dataset, lead, base_model=OTHER_BASE)
    full = finished_run(guardrail_dataset, lead, method="full")
    deleted = finished_run(guardrail_dataset, lead, artifact="")
    good = finished_run(guardrail_dataset, lead)
    api = client_for(lead)
    body = {"dataset": preference_dataset.pk, "base_model": TINY, "objective": "dpo"}
    expected = {
        seen_elsewhere: "another workspace",
        failed: "has not succeeded",
        other_base: "was trained on smollm2-135m-instruct",
        full: "full fine-tune",
        deleted: "no trained model",
    }
    for start, words in expected.items():
        response = api.post("/api/runs/", {**body, "init_run": start.pk}, format="json")
        assert response.status_code == 400, start
        assert words in response.json()["init_run"][0]
    MembershipFactory._meta.model.objects.filter(user=lead, workspace=other_workspace).delete()
    response = api.post("/api/runs/", {**body, "init_run": unseen.pk}, format="json")
    assert response.status_code == 400
    assert "among yours" in response.json()["init_run"][0]
    before = TrainingRun.objects.count()
    response = api.post("/api/runs/", {**body, "init_run": good.pk}, format="json")
    assert response.status_code == 201, response.json()
    assert response.json()["init_run"] == good.pk
    assert TrainingRun.objects.count() == before + 1
    assert TrainingRun.objects.get(pk=response.json()["id"]).init_run == good


@pytest.mark.django_db
def test_the_form_offers_objectives_and_runs_to_start_from_and_shows_errors_by_their_fields(
    client, preference_dataset, guardrail_dataset, lead
):
    good = finished_run(guardrail_dataset, lead)
    failed = finished_run(guardrail_dataset, lead, status=RunStatus.FAILED, artifact="")
    client.force_login(lead)
    content = page(client, reverse("training-run-new") + f"?init_run={good.pk}")
    assert '<option value="dpo">' in content
    assert '<option value="orpo">' in content
    start_from = content.split('name="init_run"', 1)[1].split("</select>", 1)[0]
    assert f'<option value="{good.pk}" selected>' in start_from  # "Continue from this run"
    assert f'<option value="{failed.pk}"' not in start_from  # only runs one can start from are offered
    assert "dpo: 3 epochs, learning rate 0.0005" in content  # the defaults, shown

    response = client.post(reverse("training-run-new"), form_data(preference_dataset, objective="sft"))
    assert response.status_code == 400
    assert "dpo or orpo" in field_error(response, "objective")
    response = client.post(
        reverse("training-run-new"), form_data(preference_dataset, objective="dpo", init_run=failed.pk, beta=0.2)
    )
    assert response.status_code == 400
    assert "has not succeeded" in field_error(response, "init_run")

    response = client.post(
        reverse("training-run-new"), form_data(preference_dataset, objective="dpo", init_run=good.pk, beta=0.2)
    )
    assert response.status_code == 302
    run = TrainingRun.objects.get(objective="dpo")
    assert (run.init_run, run.hyperparameters["beta"]) == (good, 0.2)
    content = page(client, response.url)
    assert f'data-init-run="{good.pk}"' in content
    assert f"continued from run #{good.pk}" in content
    assert 'id="reward-chart"' in content
    assert 'id="logp-chart"' in content


def field_error(response, name: str) -> str:
    """The error text shown by a form field (the new-run page lists it under the field)."""
    content = response.content.decode()
    marker = f'id="id_{name}_errors"'
    assert marker in content, content[:3000]
    return content.split(marker, 1)[1].split("</ul>", 1)[0]


# --- trained by a real worker


def assert_preference_run(api, run_id: int, tmp_path) -> dict:
    """A finished preference run as a user finds it: succeeded, preference metrics per step, evaluation before and
    after with preference accuracy and the guardrail metrics, the evaluated pairs, a loadable artifact."""
    _, run = watch(api, run_id)
    assert run["status"] == "succeeded", run["error"] + run["traceback_tail"]
    steps = [m for m in api.get(f"/api/runs/{run_id}/metrics/").json() if m["loss"] is not None]
    assert len(steps) == run["total_steps"] > 0
    for name in ("reward_margin", "reward_accuracy", "logp_chosen", "logp_rejected"):
        assert all(m[name] is not None for m in steps), name
    epochs = max(1, run["hyperparameters"]["epochs"])
    per_epoch = max(1, len(steps) // epochs)
    first = sum(m["reward_accuracy"] for m in steps[:per_epoch]) / per_epoch
    last = sum(m["reward_accuracy"] for m in steps[-per_epoch:]) / per_epoch
    assert last > first, (first, last)  # the chosen answers win more often on the training pairs

    evaluation = run["evaluation"]
    assert evaluation["source"] == "eval_set"
    for side in ("before", "after"):
        assert 0 <= evaluation[side]["preference_accuracy"] <= 1
        assert evaluation[side]["preference_pairs"] == 2
        assert {"refusal_rate", "over_refusal_rate"} <= set(evaluation[side])  # the template's task metrics
    items = run["eval_items"]
    assert len(items) == 2
    assert {item["blocked"] for item in items} == {True, False}
    assert all(item["rejected"] and item["after_prefers_chosen"] is not None for item in items)
    assert all(item["reference"] != item["rejected"] for item in items)

    archive = zipfile.ZipFile(io.BytesIO(b"".join(api.get(f"/api/runs/{run_id}/artifact/").streaming_content)))
    archive.extractall(tmp_path)
    from training_app.execution import base_model_dir
    from training_app.ml.registry import load_model

    model, _ = load_model(base_model_dir(TINY), adapter_dir=tmp_path)
    assert model.peft_config
    return run


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("objective", ["dpo", "orpo"])
def test_a_preference_run_learns_the_chosen_answers_and_is_evaluated_before_and_after(
    celery_worker, preference_dataset, lead, tmp_path, objective, client
):
    api = client_for(lead)
    body = {"dataset": preference_dataset.pk, "base_model": TINY, "objective": objective,
            "hyperparameters": QUICK_PREFERENCE}  # fmt: skip
    created = api.post("/api/runs/", body, format="json")
    assert created.status_code == 201, created.json()
    run = assert_preference_run(api, created.json()["id"], tmp_path)
    assert run["objective"] == objective

    client.force_login(lead)
    content = page(client, reverse("training-run", args=[run["id"]]))
    assert "Preference accuracy (chosen above rejected)" in content
    assert "Chosen and rejected answers" in content
    live = client.get(reverse("training-run-live", args=[run["id"]])).json()
    assert all(m["reward_margin"] is not None for m in live["metrics"] if m["loss"] is not None)


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_dpo_run_started_from_a_supervised_run_stacks_on_its_model(
    celery_worker, guardrail_dataset, preference_dataset, lead, tmp_path
):
    api = client_for(lead)
    sft = api.post("/api/runs/", {"dataset": guardrail_dataset.pk, "base_model": TINY, "hyperparameters": FAST},
                   format="json").json()  # fmt: skip
    _, sft = watch(api, sft["id"])
    assert sft["status"] == "succeeded", sft["error"]
    body = {"dataset": preference_dataset.pk, "base_model": TINY, "objective": "dpo", "init_run": sft["id"],
            "hyperparameters": QUICK_PREFERENCE}  # fmt: skip
    created = api.post("/api/runs/", body, format="json")
    assert created.status_code == 201, created.json()
    run = assert_preference_run(api, created.json()["id"], tmp_path)  # the artifact loads, init/ merged first

    assert run["init_run"] == sft["id"]
    assert (tmp_path / "init" / "adapter_model.safetensors").is_file()  # the supervised adapter travels with it
    logs = [line["line"] for line in api.get(f"/api/runs/{run['id']}/logs/").json()]
    assert any(f"starting from run {sft['id']}'s model" in line for line in logs)
    assert "evaluating the starting model" in logs
    _, answer = ask_playground(api, run["id"], "What dose should I take?", max_new_tokens=8)
    assert answer["status"] == "succeeded", answer["error"]
    assert isinstance(answer["fine_tuned"], str)
    # the supervised run is now the start of another: it cannot be deleted from under it
    assert TrainingRun.objects.get(pk=sft["id"]).continued_by.get().pk == run["id"]
