"""QLoRA runs (method qlora): asked for through the API and the form, trained by a real worker over the base in
4-bit, scored, asked in the playground and exported merged into the full-precision base."""

import io
import json
import sys
import zipfile

import pytest
import torch
from django.urls import reverse
from transformers import AutoModelForCausalLM

from tests.api_client import client_for
from tests.training_app.conftest import FAST, TINY, ask_playground
from tests.training_app.test_preference_runs import field_error, finished_run
from tests.training_app.test_preference_runs import preference_dataset as preference_dataset  # noqa: F401 - the fixture
from tests.training_app.test_training_worker import watch
from tests.training_app.test_views import form_data
from tests.worker import wait_for
from training_app.execution import answer_prompt, base_model_dir, usual_system_prompt
from training_app.ml.registry import load_model
from training_app.models import TrainingRun

PROMPT = "What dose of medicine number 2 should I take?"


@pytest.mark.django_db(transaction=True)
@pytest.mark.worker
def test_a_qlora_run_trains_over_the_4bit_base_is_scored_answers_as_trained_and_exports_merged(
    celery_worker, guardrail_dataset, lead, tmp_path, client
):
    api = client_for(lead)
    body = {"dataset": guardrail_dataset.pk, "base_model": TINY, "method": "qlora", "hyperparameters": FAST}
    created = api.post("/api/runs/", body, format="json")
    assert created.status_code == 201, created.json()
    assert created.json()["method"] == "qlora"
    _, run = watch(api, created.json()["id"])
    assert run["status"] == "succeeded", run["error"] + run["traceback_tail"]

    logs = [line["line"] for line in api.get(f"/api/runs/{run['id']}/logs/").json()]
    assert any("qlora (base in 4-bit NF4)" in line for line in logs), logs
    losses = [m["loss"] for m in api.get(f"/api/runs/{run['id']}/metrics/").json() if m["loss"] is not None]
    assert len(losses) == run["total_steps"]
    assert losses[-1] < losses[0]
    after = run["evaluation"]["after"]
    assert len(run["eval_items"]) == after["blocked"] + after["allowed"] > 0  # scored, pair by pair
    client.force_login(lead)
    page = client.get(f"/training/runs/{run['id']}/").content.decode()
    assert "<th>Base model (4-bit)</th>" in page  # scored against the base it trained over
    assert "Continue from this run" in page  # its adapter can be built on

    archive = zipfile.ZipFile(io.BytesIO(b"".join(api.get(f"/api/runs/{run['id']}/artifact/").streaming_content)))
    assert {"adapter_model.safetensors", "adapter_config.json"} <= set(archive.namelist())
    assert "model.safetensors" not in archive.namelist()  # an adapter: the base stays where it was
    assert json.loads(archive.read("instructory_run.json"))["method"] == "qlora"
    archive.extractall(tmp_path / "adapter")

    # The playground answers with the 4-bit base under the adapter, as trained, and compares with the 4-bit base.
    _, answer = ask_playground(api, run["id"], PROMPT, max_new_tokens=8)
    assert answer["status"] == "succeeded", answer["error"]
    source = base_model_dir(TINY)
    system = usual_system_prompt(TrainingRun.objects.get(pk=run["id"]))
    as_trained = load_model(source, adapter_dir=tmp_path / "adapter", device="cpu", quantized=True)
    full_precision = load_model(source, adapter_dir=tmp_path / "adapter", device="cpu")
    assert answer["fine_tuned"] == answer_prompt(as_trained, PROMPT, system=system, max_new_tokens=8)
    assert answer["fine_tuned"] != answer_prompt(full_precision, PROMPT, system=system, max_new_tokens=8)
    assert answer["base"] == answer_prompt(load_model(source, device="cpu", quantized=True), PROMPT, system=system,
                                           max_new_tokens=8)  # fmt: skip

    # The merged export: the adapter folded into the full-precision base, loadable without peft or bitsandbytes.
    url = f"/api/runs/{run['id']}/export/?format=merged"
    location = api.get(url)["Location"]
    job = wait_for(lambda: (found := api.get(location).json())["status"] in ("succeeded", "failed") and found)
    assert job["status"] == "succeeded", job["error"]
    with zipfile.ZipFile(io.BytesIO(b"".join(api.get(url).streaming_content))) as merged_zip:
        merged_zip.extractall(tmp_path / "merged")
    folder = tmp_path / "merged" / f"instructory-run-{run['id']}-merged"
    merged = AutoModelForCausalLM.from_pretrained(folder, use_safetensors=True).eval()
    assert "quantization_config" not in json.loads((folder / "config.json").read_text())
    ids = as_trained[1](PROMPT, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        torch.testing.assert_close(merged(ids).logits, full_precision[0](ids).logits, rtol=1e-4, atol=1e-4)


@pytest.mark.django_db
def test_the_api_takes_qlora_but_not_over_another_run_and_not_without_bitsandbytes(
    guardrail_dataset, preference_dataset, lead, monkeypatch
):
    api = client_for(lead)
    body = {"dataset": guardrail_dataset.pk, "base_model": TINY, "method": "qlora", "hyperparameters": FAST}
    assert api.post("/api/runs/", body, format="json").status_code == 201

    start = finished_run(guardrail_dataset, lead)
    over = {"dataset": preference_dataset.pk, "base_model": TINY, "objective": "dpo", "init_run": start.pk}
    refused = api.post("/api/runs/", {**over, "method": "qlora"}, format="json")
    assert refused.status_code == 400
    assert "qlora cannot start from a run" in refused.json()["init_run"][0]
    assert api.post("/api/runs/", {**over, "method": "lora"}, format="json").status_code == 201

    # A qlora run trains a LoRA adapter: a later lora run may start from it (merged into the full-precision base).
    qlora_start = finished_run(guardrail_dataset, lead, method="qlora")
    assert api.post("/api/runs/", {**over, "init_run": qlora_start.pk}, format="json").status_code == 201

    monkeypatch.setitem(sys.modules, "bitsandbytes", None)  # a server without the package
    count = TrainingRun.objects.count()
    missing = api.post("/api/runs/", body, format="json")
    assert missing.status_code == 400
    assert "QLoRA needs bitsandbytes" in missing.json()["method"][0]
    assert TrainingRun.objects.count() == count


@pytest.mark.django_db
def test_the_form_offers_qlora_and_says_when_it_needs_bitsandbytes(client, guardrail_dataset, lead, monkeypatch):
    client.force_login(lead)
    page = client.get(reverse("training-run-new")).content.decode()
    assert 'value="qlora"' in page
    assert "QLoRA (4-bit base, LoRA adapter: least memory)" in page

    response = client.post(reverse("training-run-new"), form_data(guardrail_dataset, method="qlora"))
    assert response.status_code == 302
    assert TrainingRun.objects.get().method == "qlora"

    monkeypatch.setitem(sys.modules, "bitsandbytes", None)
    response = client.post(reverse("training-run-new"), form_data(guardrail_dataset, method="qlora"))
    assert response.status_code == 400
    assert "QLoRA needs bitsandbytes" in field_error(response, "method")
    assert TrainingRun.objects.count() == 1
