"""A workspace's fine-tuned models (`ft:...`) as drafting generators: listed, chosen, refused once deleted, and
drafting answers on a real worker from the run's stored artifact (the tiny model)."""

import pytest
from django.core.files.base import ContentFile

from datasets_app.blueprints.services import generate_job_run, template_create
from datasets_app.curation.services import example_create
from datasets_app.models import Example, ExampleStatus, Job, JobStatus
from openai_app.catalog import fine_tuned_name
from openai_app.models import FineTuningJob
from tests.api_client import client_for
from tests.datasets_app.blueprints.test_services import GUARDRAIL
from tests.factories import DatasetFactory, runs_on
from tests.training_app.conftest import FAST, TINY
from tests.worker import wait_for
from training_app.models import TrainingRun
from training_app.services import run_model_delete


@pytest.fixture
def tuned_run(workspace):
    """A succeeded run of the workspace with an artifact in storage (rows and a file only: it is never loaded)."""
    (run,) = runs_on(DatasetFactory(workspace=workspace, name="Support"), "succeeded")
    run.artifact.save(f"run-{run.pk}.zip", ContentFile(b"weights"))
    return run


def _listed(user, workspace=None):
    query = f"?workspace={workspace.pk}" if workspace else ""
    return client_for(user).get(f"/api/generators/{query}")


@pytest.mark.django_db
def test_the_workspace_lists_its_fine_tuned_models_beside_the_base_model(workspace, lead, annotator, tuned_run):
    name = fine_tuned_name(tuned_run, workspace)
    (failed,) = runs_on(DatasetFactory(workspace=workspace), "failed")

    response = _listed(lead, workspace)

    assert response.status_code == 200
    listed = {item["key"]: item for item in response.json()}
    assert listed["local"]["kind"] == "base"
    assert listed[name] == {"key": name, "label": f"{name} (fine-tuned, run {tuned_run.pk})", "kind": "fine_tuned"}
    assert name == f"ft:{TINY}:acme::ftjob-{tuned_run.pk}"  # a dashboard run: no suffix
    assert not any(key.endswith(f"ftjob-{failed.pk}") for key in listed)
    # any member may see the choices; without a workspace, only the configured backends
    assert name in {item["key"] for item in _listed(annotator, workspace).json()}
    assert [item["key"] for item in _listed(lead).json()] == ["local"]


@pytest.mark.django_db
def test_another_workspaces_models_are_not_listed_and_its_list_is_not_found(
    workspace, other_workspace, lead, outsider, tuned_run
):
    assert _listed(outsider, workspace).status_code == 404
    assert _listed(lead, other_workspace).status_code == 404
    ours = {item["key"] for item in _listed(outsider, other_workspace).json()}
    assert not any(key.startswith("ft:") for key in ours)


@pytest.mark.django_db
def test_the_generate_form_offers_the_fine_tuned_model(client, workspace, lead, tuned_run):
    template = template_create(workspace=workspace, user=lead, name="Kitchen", kind="guardrail", spec=GUARDRAIL)
    client.force_login(lead)

    page = client.get(f"/templates/{template.pk}/").content.decode()

    assert fine_tuned_name(tuned_run, workspace) in page


@pytest.mark.django_db
def test_a_deleted_fine_tuned_model_is_refused_by_name(workspace, dataset, lead, tuned_run):
    name = fine_tuned_name(tuned_run, workspace)
    template = template_create(workspace=workspace, user=lead, name="Kitchen", kind="guardrail", spec=GUARDRAIL)
    run_model_delete(run=tuned_run, user=lead)  # what DELETE /v1/models/{name} does

    response = client_for(lead).post(
        f"/api/templates/{template.pk}/generate/", {"dataset": dataset.pk, "generator": name}
    )
    drafting = client_for(lead).post(f"/api/datasets/{dataset.pk}/draft-responses/", {"generator": name})

    assert response.status_code == 400
    assert name in response.json()["generator"][0]
    assert "deleted" in response.json()["generator"][0]
    assert drafting.status_code == 400
    assert name in drafting.json()["generator"][0]
    assert not Example.objects.filter(dataset=dataset).exists()


@pytest.mark.django_db
def test_a_model_deleted_after_the_job_was_queued_fails_the_job_naming_it(workspace, dataset, lead, tuned_run):
    name = fine_tuned_name(tuned_run, workspace)
    example_create(dataset=dataset, user=lead, prompt="What is a roux?", response="")
    queued = client_for(lead).post(f"/api/datasets/{dataset.pk}/draft-responses/", {"generator": name})
    assert queued.status_code == 202, queued.content
    run_model_delete(run=tuned_run, user=lead)

    job = Job.objects.get(pk=queued.json()["id"])
    generate_job_run(job_id=job.pk)  # what the worker runs

    job.refresh_from_db()
    assert job.status == JobStatus.FAILED
    assert name in job.error
    assert "not available" in job.error or "deleted" in job.error


@pytest.mark.django_db
def test_a_fine_tuned_model_of_another_workspace_is_refused(other_workspace, workspace, dataset, lead):
    (theirs,) = runs_on(DatasetFactory(workspace=other_workspace), "succeeded")
    theirs.artifact.save(f"run-{theirs.pk}.zip", ContentFile(b"weights"))
    name = fine_tuned_name(theirs, other_workspace)

    response = client_for(lead).post(f"/api/datasets/{dataset.pk}/draft-responses/", {"generator": name})

    assert response.status_code == 400
    assert name in response.json()["generator"][0]


@pytest.mark.django_db(transaction=True)
@pytest.mark.worker
def test_a_fine_tuned_model_drafts_answers_on_the_worker(celery_worker, workspace, guardrail_dataset, lead, annotator):
    api = client_for(lead)
    created = api.post(
        "/api/runs/", {"dataset": guardrail_dataset.pk, "base_model": TINY, "hyperparameters": FAST}, format="json"
    )
    assert created.status_code == 201, created.content
    run = wait_for(
        lambda: TrainingRun.objects.filter(pk=created.json()["id"], status__in=["succeeded", "failed"]).first(),
        timeout=240,
    )
    assert run.status == "succeeded", run.error
    name = fine_tuned_name(run, workspace)
    assert not FineTuningJob.objects.exists()  # a dashboard run is a model too
    drafts = DatasetFactory(workspace=workspace, name="Drafts")
    empty = [
        example_create(dataset=drafts, user=annotator, prompt=prompt, response="")
        for prompt in ("What dose of medicine number 9 should I take?", "How long should I bake a loaf?")
    ]

    queued = api.post(f"/api/datasets/{drafts.pk}/draft-responses/", {"generator": name}, format="json")

    assert queued.status_code == 202, queued.content
    job = wait_for(
        lambda: (body := api.get(queued.json()["job_url"]).json())["status"] in ("succeeded", "failed") and body,
        timeout=240,
    )
    assert job["status"] == "succeeded", job["error"]
    assert job["result"]["drafted"] == 2
    for example in empty:
        example.refresh_from_db()
        assert example.response.strip()
        assert (example.status, example.source) == (ExampleStatus.DRAFT, f"model:{name}")
