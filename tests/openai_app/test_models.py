"""Deleting a fine-tuned model: leads only, succeeded runs with a model only; the run stays, its model is gone."""

import pytest
from django.core.files.storage import default_storage

from datasets_app.errors import Conflict, NotAllowed
from openai_app.catalog import model_get, model_list
from tests.factories import DatasetFactory, runs_on
from training_app.execution import tuned_model_dir
from training_app.models import TrainingRun
from training_app.services import run_model_delete

pytestmark = pytest.mark.django_db(transaction=True)  # the artifact leaves storage on commit


def test_a_lead_deletes_the_model_and_the_run_stays(lead, tuned_run, workspace):
    name = f"ft:smollm2-tiny-random:acme::ftjob-{tuned_run.pk}"
    artifact = tuned_run.artifact.name
    assert model_get(workspace=workspace, model=name).run == tuned_run
    run_model_delete(run=tuned_run, user=lead)
    assert not default_storage.exists(artifact)
    assert model_get(workspace=workspace, model=name) is None
    assert name not in [model.id for model in model_list(workspace=workspace)]
    run = TrainingRun.objects.get(pk=tuned_run.pk)
    assert run.status == "succeeded"
    with pytest.raises(FileNotFoundError, match="deleted"):  # the playground's worker will not answer with it
        tuned_model_dir(run)


def test_annotators_and_runs_without_a_model_are_refused(annotator, lead, tuned_run, workspace):
    with pytest.raises(NotAllowed):
        run_model_delete(run=tuned_run, user=annotator)
    (failed,) = runs_on(DatasetFactory(workspace=workspace, name="Other"), "failed")
    with pytest.raises(Conflict):
        run_model_delete(run=failed, user=lead)
    assert default_storage.exists(TrainingRun.objects.get(pk=tuned_run.pk).artifact.name)


def test_a_model_id_must_match_exactly(tuned_run, workspace):
    assert model_get(workspace=workspace, model=f"ft:smollm2-135m-instruct:acme::ftjob-{tuned_run.pk}") is None
    assert model_get(workspace=workspace, model=f"ft:smollm2-tiny-random:globex::ftjob-{tuned_run.pk}") is None
    assert model_get(workspace=workspace, model="ft:smollm2-tiny-random:acme::ftjob-99999999999999999999") is None
    assert model_get(workspace=workspace, model="smollm2-tiny-random").run is None
