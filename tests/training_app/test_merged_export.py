"""The merged export: a worker folds a run's LoRA into the base weights once; the zip is a Hugging Face folder that
transformers loads without peft and that answers like the adapter does."""

import io
import zipfile

import pytest
import torch
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from transformers import AutoModelForCausalLM, AutoTokenizer

from datasets_app.models import Job
from tests.api_client import client_for
from tests.training_app.test_playground import succeeded_run
from tests.worker import wait_for
from training_app.execution import base_model_dir
from training_app.ml.config import TrainConfig
from training_app.ml.data import ChatExample
from training_app.ml.registry import load_model
from training_app.ml.train import train
from training_app.services import run_model_delete

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]

PROMPT = [{"role": "user", "content": "Which dose should I take?"}]


@pytest.fixture(scope="module")
def adapter_dir(tmp_path_factory):
    """A real LoRA adapter of the tiny model, trained hard enough that it answers unlike the base."""
    from tests.training_app.conftest import TINY

    pairs = [ChatExample(prompt=f"Question {i}?", response="I can't help with that.") for i in range(4)]
    out = tmp_path_factory.mktemp("adapter") / "run"
    train(base_model_dir(TINY), pairs, [], TrainConfig(epochs=3, batch_size=2, learning_rate=5e-2), out)
    return out


@pytest.fixture
def lora_run(guardrail_dataset, adapter_dir):
    run = succeeded_run(guardrail_dataset)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path in sorted(adapter_dir.iterdir()):
            archive.write(path, path.name)
        archive.writestr("instructory_run.json", "{}")
    run.artifact.save(f"run-{run.pk}.zip", ContentFile(buffer.getvalue()))
    return run


def greedy(model, tokenizer, n=16):
    ids = tokenizer.apply_chat_template(PROMPT, add_generation_prompt=True, return_tensors="pt", return_dict=True)
    with torch.no_grad():
        out = model.generate(**ids, max_new_tokens=n, do_sample=False)
    return out[0, ids["input_ids"].shape[1] :].tolist()


def test_the_merged_model_is_built_once_and_answers_like_the_adapter(
    celery_worker, lora_run, adapter_dir, lead, tmp_path
):
    api = client_for(lead)
    url = f"/api/runs/{lora_run.pk}/export/?format=merged"
    first = api.get(url)
    assert first.status_code == 202
    assert first["Location"].endswith(f"/api/jobs/{first.json()['id']}/")
    assert first["Retry-After"]
    again = api.get(url)  # asked again while it builds: the same job, not a second one
    assert again.status_code in (200, 202)
    if again.status_code == 202:
        assert again.json()["id"] == first.json()["id"]
    assert Job.objects.filter(kind="export").count() == 1

    job = wait_for(lambda: (body := api.get(first["Location"]).json())["status"] in ("succeeded", "failed") and body)
    assert job["status"] == "succeeded", job["error"]

    response = api.get(url)
    assert response.status_code == 200
    assert f'filename="instructory-run-{lora_run.pk}-merged.zip"' in response["Content-Disposition"]
    with zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content))) as archive:
        archive.extractall(tmp_path)
    folder = tmp_path / f"instructory-run-{lora_run.pk}-merged"
    names = {path.name for path in folder.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "generation_config.json"} <= names
    assert "adapter_config.json" not in names  # no peft needed to load it

    merged = AutoModelForCausalLM.from_pretrained(folder, use_safetensors=True).eval()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    assert tokenizer.chat_template  # the chat template travels with it
    source = base_model_dir(lora_run.base_model)
    adapted, adapted_tokenizer = load_model(source, adapter_dir=adapter_dir, device="cpu")
    base, _ = load_model(source, device="cpu")
    assert greedy(merged, tokenizer) == greedy(adapted, adapted_tokenizer)
    assert greedy(merged, tokenizer) != greedy(base, adapted_tokenizer)  # the adapter really is in the weights

    assert api.get(url).status_code == 200
    assert Job.objects.filter(kind="export").count() == 1


def test_deleting_the_model_deletes_its_merged_export(celery_worker, lora_run, lead):
    api = client_for(lead)
    url = f"/api/runs/{lora_run.pk}/export/?format=merged"
    location = api.get(url)["Location"]
    wait_for(lambda: api.get(location).json()["status"] == "succeeded")
    stored = Job.objects.get(kind="export").result["file"]
    assert default_storage.exists(stored)

    run_model_delete(run=lora_run, user=lead)
    assert not default_storage.exists(stored)
    assert api.get(url).status_code == 404


def test_the_run_page_button_shows_the_job_then_downloads(celery_worker, lora_run, lead, client):
    client.force_login(lead)
    page = client.get(f"/training/runs/{lora_run.pk}/")
    assert b"Download merged model" in page.content
    started = client.post(f"/training/runs/{lora_run.pk}/export/merged/")
    job = Job.objects.get(kind="export")
    assert started.status_code == 302
    assert started["Location"] == f"/jobs/{job.pk}/"
    wait_for(lambda: client.get(f"/jobs/{job.pk}/", HTTP_HX_REQUEST="true").content.count(b"data-merged-download"))
    ready = client.post(f"/training/runs/{lora_run.pk}/export/merged/")
    assert ready["Location"] == f"/api/runs/{lora_run.pk}/export/?format=merged"


def test_who_and_what_may_be_exported(lora_run, guardrail_dataset, lead, outsider):
    assert client_for(outsider).get(f"/api/runs/{lora_run.pk}/export/?format=merged").status_code == 404
    bad = client_for(lead).get(f"/api/runs/{lora_run.pk}/export/?format=gguf")
    assert bad.status_code == 400
    assert "format" in bad.json()
    adapter = client_for(lead).get(f"/api/runs/{lora_run.pk}/export/")
    assert adapter.status_code == 200
    assert adapter["Content-Disposition"].endswith(f'instructory-run-{lora_run.pk}.zip"')
    untrained = succeeded_run(guardrail_dataset)
    missing = client_for(lead).get(f"/api/runs/{untrained.pk}/export/?format=merged")
    assert missing.status_code == 404
    assert "no trained model" in str(missing.json())
    assert not Job.objects.filter(kind="export").exists()
