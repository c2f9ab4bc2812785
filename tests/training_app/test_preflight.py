"""A run's preflight: every pair tokenized as training will, totals, steps, time, warnings; nothing saved or queued."""

import math
import os
import subprocess
import sys
from itertools import groupby

import pytest
from django.conf import settings
from django.core.files.storage import default_storage

from datasets_app.curation.services import example_create
from datasets_app.models import DatasetKind, ExampleSplit, ExampleStatus
from tests.api_client import client_for
from tests.factories import DatasetFactory
from tests.training_app.conftest import FAST, TINY, guardrail_pairs
from training_app.ml.config import TrainConfig, steps_per_epoch
from training_app.ml.data import ChatExample, encode
from training_app.ml.registry import load_tokenizer
from training_app.models import DatasetVersion, RunStatus, TrainingRun
from training_app.services import default_hyperparameters
from training_app.snapshots import snapshot_create, snapshot_rows

pytestmark = pytest.mark.django_db

URL = "/api/runs/preflight/"
PAIR_URL = "/api/runs/preflight/pair/"
LONG_RESPONSE = "Preheat the oven, then whisk the eggs with the sugar until pale. " * 20


@pytest.fixture
def body(guardrail_dataset, tiny_source):
    return {"dataset": guardrail_dataset.pk, "base_model": TINY, "hyperparameters": FAST}


@pytest.fixture
def long_pair(guardrail_dataset, lead):
    return example_create(
        dataset=guardrail_dataset, user=lead, status=ExampleStatus.APPROVED, tags=["allowed:baking"],
        prompt="How do I make a sponge cake?", response=LONG_RESPONSE,
    )  # fmt: skip


def preflight(user, body, query=""):
    response = client_for(user).post(URL + query, body, format="json")
    assert response.status_code == 200, response.content
    return response.json()


def codes(answer) -> list[str]:
    return [warning["code"] for warning in answer["warnings"]]


def test_every_pair_is_counted_and_trained_plus_masked_is_its_tokens(lead, body, guardrail_dataset):
    answer = preflight(lead, body)

    assert answer["count"] == len(answer["pairs"]) == 12
    assert {pair["example"] for pair in answer["pairs"]} == set(guardrail_dataset.examples.values_list("id", flat=True))
    for pair in answer["pairs"]:
        assert pair["trained_tokens"] + pair["masked_tokens"] == pair["tokens"] == pair["full_tokens"]
        assert pair["trained_tokens"] > 0
        assert pair["masked_tokens"] > 0
        assert pair["truncated"] is False
    totals = answer["totals"]
    assert totals["pairs"] == 12
    assert totals["tokens"] == sum(pair["tokens"] for pair in answer["pairs"])
    assert totals["trained_tokens"] + totals["masked_tokens"] == totals["tokens"]
    splits = answer["splits"]
    assert splits["train"]["pairs"] + splits["validation"]["pairs"] == 12
    assert splits["train"]["tokens"] + splits["validation"]["tokens"] == totals["tokens"]


def test_the_counts_are_the_trainers_own_encoding(lead, body, guardrail_dataset, tiny_source):
    # the tokenizer the trainer loads (AutoTokenizer, with torch), not the preflight's torch-free one
    tokenizer = load_tokenizer(tiny_source)
    answer = preflight(lead, body)

    by_id = {pair["example"]: pair for pair in answer["pairs"]}
    for example in guardrail_dataset.examples.all():
        encoded = encode(tokenizer, ChatExample(prompt=example.prompt, response=example.response), FAST["max_seq_len"])
        pair = by_id[example.pk]
        assert (pair["tokens"], pair["trained_tokens"]) == (len(encoded), encoded.n_labels)


def weighted_pair(dataset, lead, weight: int):
    """A three-turn pair whose first answer, Lyon, has the weight given."""
    return example_create(
        dataset=dataset, user=lead, status=ExampleStatus.APPROVED, tags=["allowed:geography"], allow_duplicate=True,
        prompt="Thanks.", response="You're welcome.", history=[
            {"role": "user", "content": "Capital of France?"}, {"role": "assistant", "content": "Lyon?", "weight": weight},
            {"role": "user", "content": "Sure?"}, {"role": "assistant", "content": "Paris, sorry."},
        ],
    )  # fmt: skip


def test_earlier_answers_count_as_trained_unless_their_weight_is_0(lead, body, guardrail_dataset, tiny_source):
    trained, context = weighted_pair(guardrail_dataset, lead, 1), weighted_pair(guardrail_dataset, lead, 0)
    tokenizer = load_tokenizer(tiny_source)

    by_id = {pair["example"]: pair for pair in preflight(lead, body)["pairs"]}

    for example in (trained, context):
        chat = ChatExample(prompt=example.prompt, response=example.response, history=example.history)
        encoded = encode(tokenizer, chat, FAST["max_seq_len"])
        assert (by_id[example.pk]["tokens"], by_id[example.pk]["trained_tokens"]) == (len(encoded), encoded.n_labels)
    lyon = len(tokenizer("Lyon?<|im_end|>", add_special_tokens=False)["input_ids"])
    assert by_id[trained.pk]["trained_tokens"] == by_id[context.pk]["trained_tokens"] + lyon
    assert by_id[trained.pk]["tokens"] == by_id[context.pk]["tokens"]


def test_the_token_view_marks_each_trained_answer(lead, body, guardrail_dataset, tiny_source):
    pair = weighted_pair(guardrail_dataset, lead, 0)

    answer = client_for(lead).get(f"{PAIR_URL}?example={pair.pk}&base_model={TINY}&max_seq_len=512").json()

    runs = [
        ("".join(piece["text"] for piece in run), kind) for kind, run in groupby(answer["pieces"], lambda p: p["kind"])
    ]
    trained = [text for text, kind in runs if kind == "trained"]
    assert trained == ["Paris, sorry.<|im_end|>", "You're welcome.<|im_end|>"]  # not Lyon (weight 0), nor the user's
    assert [kind for _, kind in runs] == ["masked", "trained", "masked", "trained"]
    assert "Lyon?<|im_end|>" in runs[0][0]
    assert answer["trained_tokens"] == sum(piece["kind"] == "trained" for piece in answer["pieces"])


def test_steps_are_what_the_trainer_computes(lead, body):
    answer = preflight(lead, {**body, "hyperparameters": {**FAST, "batch_size": 3, "grad_accum": 2, "epochs": 5}})

    config = TrainConfig.from_dict({**FAST, "batch_size": 3, "grad_accum": 2, "epochs": 5})
    train_pairs = answer["splits"]["train"]["pairs"]
    assert answer["totals"]["steps_per_epoch"] == steps_per_epoch(train_pairs, config) == math.ceil(train_pairs / 6)
    assert answer["totals"]["steps"] == 5 * answer["totals"]["steps_per_epoch"]
    assert answer["totals"]["epochs"] == 5


def test_a_pair_longer_than_max_seq_len_is_reported_truncated(lead, body, long_pair):
    answer = preflight(lead, body)

    (pair,) = [pair for pair in answer["pairs"] if pair["example"] == long_pair.pk]
    assert pair["truncated"] is True
    assert pair["tokens"] == FAST["max_seq_len"] < pair["full_tokens"]
    assert pair["trained_tokens"] + pair["masked_tokens"] == pair["tokens"]
    assert answer["totals"]["truncated"] == 1
    assert "truncated" in codes(answer)
    others = [pair for pair in answer["pairs"] if pair["example"] != long_pair.pk]
    assert not any(pair["truncated"] for pair in others)


def test_checking_again_sees_the_pairs_as_they_are_now(lead, body, guardrail_dataset):
    first = preflight(lead, body)
    pair = guardrail_dataset.examples.order_by("id").first()
    guardrail_dataset.examples.filter(pk=pair.pk).update(response=LONG_RESPONSE)

    again = preflight(lead, body)

    assert first["totals"]["truncated"] == 0
    assert again["totals"]["truncated"] == 1
    assert [p["example"] for p in again["pairs"] if p["truncated"]] == [pair.pk]
    assert preflight(lead, {**body, "hyperparameters": {**FAST, "max_seq_len": 4096}})["totals"]["truncated"] == 0


def test_a_preflight_saves_and_queues_nothing(lead, body, django_capture_on_commit_callbacks):
    files_before = default_storage.listdir("snapshots") if default_storage.exists("snapshots") else None

    with django_capture_on_commit_callbacks() as callbacks:
        preflight(lead, body)
        preflight(lead, {**body, "hyperparameters": {"max_seq_len": 64}})

    assert callbacks == []  # no task is sent (run_create sends its task on commit)
    assert not DatasetVersion.objects.exists()
    assert not TrainingRun.objects.exists()
    files_after = default_storage.listdir("snapshots") if default_storage.exists("snapshots") else None
    assert files_after == files_before


def test_a_dataset_is_checked_on_the_rows_and_split_a_snapshot_made_now_would_have(lead, body, guardrail_dataset):
    answer = preflight(lead, {**body, "validation_fraction": 0.3})
    snapshot = snapshot_create(dataset=guardrail_dataset, user=lead, validation_fraction=0.3)

    assert {pair["example"]: pair["split"] for pair in answer["pairs"]} == {
        row.ref: row.split for row in snapshot_rows(snapshot)
    }
    assert answer["splits"]["validation"]["pairs"] == snapshot.n_validation


def test_a_snapshot_is_checked_on_its_frozen_rows(lead, body, guardrail_dataset, long_pair):
    snapshot = snapshot_create(dataset=guardrail_dataset, user=lead)
    long_pair.delete()  # later changes to the dataset do not change the snapshot

    answer = preflight(lead, {"snapshot": snapshot.pk, "base_model": TINY, "hyperparameters": FAST})

    assert answer["snapshot"] == snapshot.pk
    assert answer["count"] == snapshot.n_total == 13
    assert answer["totals"]["truncated"] == 1
    assert DatasetVersion.objects.count() == 1


def test_the_body_is_validated_as_for_starting_a_run(lead, body):
    api = client_for(lead)

    bad = api.post(URL, {**body, "hyperparameters": {"max_seq_len": 8, "epochs": 0}}, format="json")
    assert bad.status_code == 400
    assert set(bad.json()) == {"hyperparameters.max_seq_len", "hyperparameters.epochs"}
    assert api.post(URL, {**body, "base_model": "gpt-9"}, format="json").json()["base_model"]
    assert api.post(URL, {"base_model": TINY}, format="json").status_code == 400
    assert api.post(URL, {**body, "validation_fraction": 1.5}, format="json").status_code == 400


def test_annotators_get_403_and_outsiders_404(annotator, outsider, body, guardrail_dataset, lead):
    snapshot = snapshot_create(dataset=guardrail_dataset, user=lead)
    example = guardrail_dataset.examples.first()
    pair_query = f"?example={example.pk}&base_model={TINY}"

    assert client_for(annotator).post(URL, body, format="json").status_code == 403
    assert client_for(annotator).get(PAIR_URL + pair_query).status_code == 403
    assert client_for(outsider).post(URL, body, format="json").status_code == 404
    assert client_for(outsider).post(URL, {"snapshot": snapshot.pk}, format="json").status_code == 404
    assert client_for(outsider).get(PAIR_URL + pair_query).status_code == 404
    assert client_for(outsider).get(PAIR_URL + pair_query + f"&snapshot={snapshot.pk}").status_code == 404


def test_the_estimate_uses_the_default_speed_until_a_run_has_measured_one(lead, body, guardrail_dataset):
    first = preflight(lead, body)["estimate"]

    assert first["basis"] == "default"
    assert first["runs"] == 0
    assert first["tokens_per_s"] == settings.PREFLIGHT_DEFAULT_TOKENS_PER_S
    assert first["seconds"] == pytest.approx(first["tokens"] / first["tokens_per_s"], abs=0.1)

    # a finished run as its worker leaves it: the summary holds its measured training speed
    snapshot = snapshot_create(dataset=guardrail_dataset, user=None)
    TrainingRun.objects.create(
        snapshot=snapshot, base_model=TINY, status=RunStatus.SUCCEEDED, hyperparameters=default_hyperparameters(),
        summary={"tokens_per_s": 2000.0, "train_seconds": 3.0},
    )  # fmt: skip
    TrainingRun.objects.create(snapshot=snapshot, base_model="smollm2-135m-instruct", status=RunStatus.SUCCEEDED,
                               summary={"tokens_per_s": 50.0})  # fmt: skip
    TrainingRun.objects.create(snapshot=snapshot, base_model=TINY, status=RunStatus.FAILED, summary={})
    then = preflight(lead, body)["estimate"]

    assert then["basis"] == "measured"
    assert then["runs"] == 1
    assert then["tokens_per_s"] == 2000.0
    assert then["tokens"] == first["tokens"]
    assert then["seconds"] == pytest.approx(first["tokens"] / 2000, abs=0.1)
    assert then["tokens"] == preflight(lead, body)["splits"]["train"]["tokens"] * FAST["epochs"]


def test_few_pairs_are_warned_about_and_a_few_dozen_are_not(lead, workspace, tiny_source):
    dataset = DatasetFactory(workspace=workspace, name="Big enough", kind=DatasetKind.GUARDRAIL)
    for pair in guardrail_pairs(14, 14):
        example_create(dataset=dataset, user=lead, status=ExampleStatus.APPROVED, **pair)
    body = {"dataset": dataset.pk, "base_model": TINY, "hyperparameters": FAST}

    assert codes(preflight(lead, body)) == ["eval_set_empty"]
    dataset.examples.filter(prompt__contains="number 1").delete()  # 1 and 10..13 of each side: 18 left
    small = preflight(lead, body)
    assert codes(small) == ["too_few_pairs", "eval_set_empty"]
    assert f"only {small['splits']['train']['pairs']} training pairs" in small["warnings"][0]["message"]


def test_repeated_prompts_are_warned_about(lead, body, guardrail_dataset):
    example_create(
        dataset=guardrail_dataset, user=lead, status=ExampleStatus.APPROVED, tags=["allowed:baking"],
        prompt="how long should I bake  CAKE number 1?", response="Forty minutes.",
    )  # fmt: skip

    (warning,) = [w for w in preflight(lead, body)["warnings"] if w["code"] == "duplicates"]
    assert warning["message"] == "1 pair repeats the prompt of another pair, 1 of them with a different response"


def test_evaluation_pairs_are_not_trained_and_an_empty_or_overlapping_evaluation_set_is_warned_about(
    lead, body, guardrail_dataset
):
    assert "eval_set_empty" in codes(preflight(lead, body))

    held_out = example_create(
        dataset=guardrail_dataset, user=lead, status=ExampleStatus.APPROVED, tags=["allowed:baking"],
        prompt="How long should I bake a loaf of rye bread?", response="About 45 minutes.", split=ExampleSplit.EVAL,
    )  # fmt: skip
    answer = preflight(lead, body)
    assert held_out.pk not in {pair["example"] for pair in answer["pairs"]}
    assert answer["count"] == 12
    assert "eval_set_empty" not in codes(answer)
    assert "eval_overlap" not in codes(answer)

    example_create(
        dataset=guardrail_dataset, user=lead, status=ExampleStatus.APPROVED, tags=["allowed:baking"],
        prompt="How long should I bake a loaf of rye bread?", response="Forty-five minutes.",
    )  # fmt: skip
    (warning,) = [w for w in preflight(lead, body)["warnings"] if w["code"] == "eval_overlap"]
    assert warning["message"].startswith("1 training pair repeats or nearly repeats an evaluation prompt")


def test_a_guardrail_set_leaning_to_one_side_is_warned_about(lead, workspace, tiny_source):
    dataset = DatasetFactory(workspace=workspace, name="Lopsided", kind=DatasetKind.GUARDRAIL)
    for pair in guardrail_pairs(20, 3):
        example_create(dataset=dataset, user=lead, status=ExampleStatus.APPROVED, **pair)

    answer = preflight(lead, {"dataset": dataset.pk, "base_model": TINY, "hyperparameters": FAST})

    (warning,) = [w for w in answer["warnings"] if w["code"] == "imbalance"]
    assert warning["message"].startswith("18 blocked and 2 allowed training pairs")
    assert "refuse allowed questions" in warning["message"]


def test_an_empty_or_one_sided_validation_split_is_warned_about(lead, workspace, tiny_source):
    dataset = DatasetFactory(workspace=workspace, name="Tiny", kind=DatasetKind.GUARDRAIL)
    for pair in guardrail_pairs(1, 5):
        example_create(dataset=dataset, user=lead, status=ExampleStatus.APPROVED, **pair)
    body = {"dataset": dataset.pk, "base_model": TINY, "hyperparameters": FAST}

    # one blocked pair cannot be split: validation holds only allowed prompts
    one_sided = preflight(lead, body)
    assert "validation_one_sided" in codes(one_sided)
    assert "no blocked prompts" in str(one_sided["warnings"])

    dataset.examples.filter(prompt__startswith="How long should I bake").exclude(prompt__contains="number 0").delete()
    empty = preflight(lead, body)
    assert empty["splits"]["validation"]["pairs"] == 0
    assert "no_validation" in codes(empty)


def test_the_pair_list_pages_and_sorts(lead, body, long_pair):
    everything = preflight(lead, body)

    page = preflight(lead, body, "?limit=5&offset=10")
    assert page["count"] == 13
    assert [pair["example"] for pair in page["pairs"]] == [pair["example"] for pair in everything["pairs"][10:15]]
    assert page["totals"] == everything["totals"]
    longest = preflight(lead, body, "?order=longest&limit=1")
    assert longest["pairs"][0]["example"] == long_pair.pk
    assert client_for(lead).post(URL + "?limit=0", body, format="json").status_code == 400


def test_past_the_limit_a_sample_is_tokenized_and_the_totals_are_scaled(lead, body, settings):
    exact = preflight(lead, body)
    settings.PREFLIGHT_MAX_PAIRS = 6

    sampled = preflight(lead, body)

    assert sampled["sampled"] is True
    assert sampled["count"] == len(sampled["pairs"]) == 6
    assert sampled["totals"]["pairs"] == 12
    assert sampled["totals"]["steps"] == exact["totals"]["steps"]
    assert sampled["splits"]["train"]["pairs"] == exact["splits"]["train"]["pairs"]
    # the pairs are alike in length, so the scaled totals are close to the exact ones
    assert sampled["totals"]["tokens"] == pytest.approx(exact["totals"]["tokens"], rel=0.1)
    totals = sampled["totals"]
    assert totals["trained_tokens"] + totals["masked_tokens"] == totals["tokens"]


def test_without_the_tokenizer_on_this_machine_the_answer_says_how_to_get_it(lead, body, settings, tmp_path):
    settings.MODEL_CACHE_DIR = tmp_path

    response = client_for(lead).post(URL, body, format="json")

    assert response.status_code == 409
    assert "prepare_models" in response.json()["detail"]


def test_a_pairs_tokens_are_marked_trained_masked_or_cut(lead, body, long_pair, tiny_source):
    api = client_for(lead)
    query = f"?example={long_pair.pk}&base_model={TINY}&max_seq_len=128"

    answer = api.get(PAIR_URL + query).json()

    kinds = [piece["kind"] for piece in answer["pieces"]]
    assert kinds.count("trained") == answer["trained_tokens"]
    assert kinds.count("masked") == answer["masked_tokens"]
    assert kinds.count("cut") == answer["full_tokens"] - answer["tokens"] > 0
    assert answer["truncated"] is True
    assert answer["split"] is None  # the pair as it is now is in no split yet
    # the pieces are the conversation as the chat template renders it, in order
    tokenizer = load_tokenizer(tiny_source)
    rendered = tokenizer.apply_chat_template(
        [{"role": "user", "content": long_pair.prompt}, {"role": "assistant", "content": long_pair.response}],
        tokenize=False,
    )
    text = "".join(piece["text"] for piece in answer["pieces"])
    assert rendered.startswith(text)
    assert text.endswith("<|im_end|>")
    # the oldest context goes first (down to a quarter of max_seq_len), then the end of the answer
    assert [kind for kind, _ in groupby(kinds)] == ["cut", "masked", "trained", "cut"]
    masked = "".join(piece["text"] for piece in answer["pieces"] if piece["kind"] == "masked")
    assert long_pair.prompt in masked
    assert masked.endswith("<|im_start|>assistant\n")
    assert api.get(PAIR_URL + query.replace("128", "100000")).json()["truncated"] is False


def test_a_pairs_tokens_in_a_snapshot_are_its_frozen_copy(lead, body, guardrail_dataset, long_pair):
    snapshot = snapshot_create(dataset=guardrail_dataset, user=lead)
    pk = long_pair.pk
    long_pair.delete()
    api = client_for(lead)

    frozen = api.get(f"{PAIR_URL}?example={pk}&snapshot={snapshot.pk}&base_model={TINY}&max_seq_len=128")
    gone = api.get(f"{PAIR_URL}?example={pk}&base_model={TINY}&max_seq_len=128")

    assert frozen.status_code == 200
    assert frozen.json()["truncated"] is True
    assert frozen.json()["split"] in ("train", "validation")
    assert gone.status_code == 404
    bad = api.get(f"{PAIR_URL}?example={pk}&snapshot={snapshot.pk}&max_seq_len=8")
    assert bad.status_code == 400
    assert bad.json() == {"max_seq_len": ["Ensure this value is greater than or equal to 32."]}


@pytest.mark.django_db(transaction=True)
def test_the_web_process_checks_a_run_without_loading_torch_or_weights(lead, guardrail_dataset, tiny_source):
    """A fresh interpreter, as a web process is: the preflight and a pair's tokens need only the tokenizer."""
    from tests.worker import database_url

    example = guardrail_dataset.examples.first()
    code = f"""
import sys, django
django.setup()
from rest_framework.test import APIClient
from django.contrib.auth import get_user_model
api = APIClient()
api.force_authenticate(get_user_model().objects.get(pk={lead.pk}))
body = {{"dataset": {guardrail_dataset.pk}, "base_model": "{TINY}", "hyperparameters": {{"max_seq_len": 64}}}}
assert api.post("/api/runs/preflight/", body, format="json").status_code == 200
assert api.get("/api/runs/preflight/pair/?example={example.pk}&base_model={TINY}").status_code == 200
print(sorted(name for name in ("torch", "safetensors", "peft") if name in sys.modules))
"""
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "project.settings", "DATABASE_URL": database_url()}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=settings.BASE_DIR, check=False
    )

    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().splitlines()[-1] == "[]"
