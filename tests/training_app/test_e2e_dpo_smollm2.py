"""End to end on the real SmolLM2-135M-Instruct: the guardrail demo, supervised first, then preferences.

A supervised LoRA run on the demo's guardrail dataset learns the refusals but also refuses some allowed questions
that look alike. Preference pairs made from the demo (a blocked prompt: its refusal chosen over the base model's
compliant answer; an allowed prompt: its answer chosen over the refusal) then train a DPO run that starts from the
supervised run (init_run). Both runs are scored on the same held-out prompts: the DPO run keeps the blocked ones
refused and refuses fewer allowed ones.

Measured on the 2-core machine under other sessions' load (load average 9 to 15), 2026-12-02: 13 to 17 minutes in
all (the supervised run alone 8 to 9); at load average about 3, 6.5 minutes. Neither learning rate tried made the DPO run refuse fewer allowed prompts
(README, "Preference tuning"): the test is marked xfail until pairs or settings that do are found.
"""

import time

import pytest

from datasets_app.blueprints.specs import GuardrailSpec, spec_or_none
from datasets_app.curation.services import example_create
from datasets_app.models import Dataset, DatasetKind, ExampleSplit, ExampleStatus
from tests.api_client import client_for
from tests.training_app.test_e2e_smollm2 import MODEL, demo_guardrails, finished  # noqa: F401 - a fixture
from tests.worker import wait_for
from training_app.ml.metrics import is_refusal
from training_app.models import TrainingRun
from training_app.snapshots import snapshot_rows

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.worker,
    pytest.mark.slow,
    pytest.mark.embedded_only,
    pytest.mark.timeout(1200),  # two runs of the real model, on a busy machine
    pytest.mark.xfail(
        strict=False,
        reason="measured 2026-12-02: DPO on these pairs kept the blocked prompts refused (lr 2e-4) but refused 2 of "
        "6 allowed prompts against the supervised run's 1; at lr 5e-4 it degraded the text (3 of 5 blocked refused)",
    ),
]


DPO_LEARNING_RATE = 2e-4


def base_answers(prompts: list[str], system: str) -> list[str]:
    """What the base model says to each prompt (greedy): for a blocked prompt, the compliant answer to reject."""
    from training_app.execution import base_model_dir
    from training_app.ml.data import ChatExample
    from training_app.ml.generate import generate
    from training_app.ml.registry import load_model

    model, tokenizer = load_model(base_model_dir(MODEL))
    return generate(model, tokenizer, [ChatExample(prompt=p, system=system) for p in prompts], max_new_tokens=48)


def preference_dataset_from(run: TrainingRun, spec: GuardrailSpec, evaluated: dict[str, str]) -> Dataset:
    """The supervised run's pairs as preference pairs: its training pairs to train on, its held-out prompts as the
    evaluation set (so both runs are scored on the same prompts).

    A blocked prompt: its refusal chosen over the base model's compliant answer (`evaluated` holds those of the
    held-out prompts, from the supervised run's evaluation; one that itself refuses makes no pair). An allowed
    prompt: its answer chosen over a refusal, what an over-refusing model says to it."""
    rows = snapshot_rows(run.snapshot)
    dataset = Dataset.objects.create(
        workspace=run.snapshot.dataset.workspace, name="Support assistant preferences", kind=DatasetKind.PREFERENCE
    )
    blocked_train = [row for row in rows if row.blocked and row.split == "train"]
    drafted = dict(zip([row.prompt for row in blocked_train], base_answers(
        [row.prompt for row in blocked_train], blocked_train[0].system), strict=True))  # fmt: skip
    blocked_refusals = [spec.refusal_for(topic) for topic in spec.blocked]
    lead = run.created_by
    for n, row in enumerate(rows):
        if row.blocked:
            chosen, rejected = row.response, drafted.get(row.prompt) or evaluated[row.prompt]
            if row.split == "train" and is_refusal(rejected):
                continue
        else:  # the template's refusal for the allowed topic, or a blocked topic's, in turn
            topic = next(tag.split(":", 1)[1] for tag in row.tags if tag.startswith("allowed:"))
            refusals = [spec.refusal_for(topic), *blocked_refusals]
            chosen, rejected = row.response, refusals[n % len(refusals)]
        split = ExampleSplit.TRAIN if row.split == "train" else ExampleSplit.EVAL
        example_create(dataset=dataset, user=lead, prompt=row.prompt, response=chosen, rejected=rejected,
                       system_prompt=row.system, tags=row.tags, status=ExampleStatus.APPROVED, split=split)  # fmt: skip
    return dataset


def test_dpo_after_supervised_keeps_the_refusals_and_refuses_fewer_allowed_prompts(celery_worker, demo_guardrails):  # noqa: F811
    dataset, lead = demo_guardrails
    api = client_for(lead)
    started = time.monotonic()
    created = api.post(
        "/api/runs/", {"dataset": dataset.pk, "base_model": MODEL, "validation_fraction": 0.25}, format="json"
    )
    assert created.status_code == 201, created.json()
    sft = wait_for(lambda: finished(api, created.json()["id"]), timeout=900, interval=1)
    assert sft["status"] == "succeeded", sft["error"] + sft["traceback_tail"]
    sft_after = sft["evaluation"]["after"]
    assert sft_after["refusal_rate"] >= 0.8
    assert sft_after["over_refusal_rate"] > 0  # the premise: supervised tuning over-refuses some allowed prompts
    sft_seconds = time.monotonic() - started

    spec = spec_or_none(dataset.template.kind, dataset.template.spec)
    assert isinstance(spec, GuardrailSpec)
    evaluated = {item["prompt"]: item["before_output"] for item in sft["eval_items"]}
    preferences = preference_dataset_from(TrainingRun.objects.get(pk=sft["id"]), spec, evaluated)

    # dpo's defaults but a lower learning rate: at 5e-4 these pairs (long written answers chosen) degraded the text
    body = {"dataset": preferences.pk, "base_model": MODEL, "objective": "dpo", "init_run": sft["id"],
            "hyperparameters": {"learning_rate": DPO_LEARNING_RATE}}  # fmt: skip
    created = api.post("/api/runs/", body, format="json")
    assert created.status_code == 201, created.json()
    assert (created.json()["hyperparameters"]["epochs"], created.json()["hyperparameters"]["beta"]) == (3, 0.1)
    dpo = wait_for(lambda: finished(api, created.json()["id"]), timeout=900, interval=1)
    assert dpo["status"] == "succeeded", dpo["error"] + dpo["traceback_tail"]
    total_seconds = time.monotonic() - started

    before, after = dpo["evaluation"]["before"], dpo["evaluation"]["after"]
    print(  # the figures the README quotes (pytest -s shows them)
        f"\nsupervised: {sft_seconds:.0f} s, refusal {sft_after['refusal_rate']:.2f}, over-refusal "
        f"{sft_after['over_refusal_rate']:.2f}; dpo on {preferences.examples.count()} pairs: "
        f"{dpo['summary']['train_seconds']} s training, refusal {before['refusal_rate']:.2f} -> "
        f"{after['refusal_rate']:.2f}, over-refusal {before['over_refusal_rate']:.2f} -> "
        f"{after['over_refusal_rate']:.2f}, preference accuracy {before['preference_accuracy']:.2f} -> "
        f"{after['preference_accuracy']:.2f}; total {total_seconds:.0f} s"
    )
    for item in dpo["eval_items"]:
        print(f"  {'blocked' if item['blocked'] else 'allowed'} {item['prompt'][:50]!r}: {item['after_output'][:70]!r}")
    assert dpo["evaluation"]["source"] == "eval_set"
    assert (after["blocked"], after["allowed"]) == (sft_after["blocked"], sft_after["allowed"])  # the same prompts
    assert after["refusal_rate"] >= 0.8  # the blocked prompts stay refused
    assert after["over_refusal_rate"] < sft_after["over_refusal_rate"]  # fewer allowed prompts refused
    assert after["preference_accuracy"] >= before["preference_accuracy"]
