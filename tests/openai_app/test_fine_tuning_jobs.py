"""Fine-tuning jobs through the real `openai` client, without a worker: what creating, listing and cancelling a job
does, every refusal as the client's exception, and who may do what. tests/openai_app/test_fine_tuning_worker.py
runs jobs to their end on a real worker."""

import openai
import pytest

from datasets_app.models import Dataset, Example, ExampleSplit, ExampleStatus
from openai_app.models import FineTuningJob
from tests.openai_app.conftest import CHAT_LINES, jsonl
from tests.training_app.conftest import TINY
from tests.training_app.conftest_ml import tiny_tokenizer
from training_app.ml.data import IGNORE_INDEX, ChatExample, encode
from training_app.models import RunStatus, TrainingRun
from training_app.snapshots import snapshot_rows

PREFERENCE_LINE = {
    "input": {"messages": [{"role": "user", "content": "Tell me a secret."}]},
    "preferred_output": [{"role": "assistant", "content": "I can't share secrets."}],
    "non_preferred_output": [{"role": "assistant", "content": "The password is hunter2."}],
}
EVAL_LINES = [
    {"messages": [{"role": "user", "content": "Capital of Italy?"}, {"role": "assistant", "content": "Rome."}]},
]


@pytest.fixture(autouse=True)
def no_worker(private_broker):
    """Jobs are queued on a broker of the test's own: the session's worker, when one runs, never starts them."""
    private_broker.start()


@pytest.fixture
def lead_client(client_with, lead_key):
    return client_with(lead_key)


def upload(client: openai.OpenAI, lines: list, name: str = "train.jsonl") -> str:
    return client.files.create(file=(name, jsonl(lines)), purpose="fine-tune").id


def test_a_job_is_a_queued_run_on_a_dataset_made_from_its_files(lead_client, workspace):
    training, validation = upload(lead_client, CHAT_LINES * 2), upload(lead_client, EVAL_LINES, "valid.jsonl")

    job = lead_client.fine_tuning.jobs.create(
        model=TINY, training_file=training, validation_file=validation, suffix="support-v1", seed=7,
        hyperparameters={"n_epochs": 3, "batch_size": 2, "learning_rate_multiplier": 0.5},
    )  # fmt: skip

    run = TrainingRun.objects.get()
    assert job.id == f"ftjob-{run.pk}"
    assert (job.object, job.status, job.model, job.fine_tuned_model) == ("fine_tuning.job", "queued", TINY, None)
    assert (job.training_file, job.validation_file, job.seed) == (training, validation, 7)
    assert (job.hyperparameters.n_epochs, job.hyperparameters.batch_size) == (3, 2)
    assert job.hyperparameters.learning_rate_multiplier == 0.5
    assert job.method.type == "supervised"
    assert job.method.supervised.hyperparameters.n_epochs == 3
    assert (job.result_files, job.trained_tokens, job.error, job.finished_at) == ([], None, None, None)
    # the run underneath: the job's settings, learning rate scaled from the default (1e-3)
    assert (run.base_model, run.status) == (TINY, RunStatus.QUEUED)
    assert run.hyperparameters["epochs"] == 3
    assert run.hyperparameters["batch_size"] == 2
    assert run.hyperparameters["learning_rate"] == pytest.approx(5e-4)
    assert run.hyperparameters["seed"] == 7
    assert run.snapshot.seed == 7
    # its dataset: the training file's conversations as approved pairs, the validation file's as evaluation pairs
    dataset = run.snapshot.dataset
    assert dataset.workspace == workspace
    assert dataset.name == f"{job.id} · train.jsonl"
    pairs = Example.objects.filter(dataset=dataset)
    assert pairs.count() == 5
    assert set(pairs.values_list("status", flat=True)) == {ExampleStatus.APPROVED}
    assert set(pairs.values_list("source", flat=True)) == {f"openai-file:{training}", f"openai-file:{validation}"}
    multi_turn = pairs.filter(prompt="Sure?").first()
    assert (multi_turn.system_prompt, multi_turn.response) == ("Be brief.", "Paris.")
    assert multi_turn.history == [
        {"role": "user", "content": "Capital of France?"}, {"role": "assistant", "content": "Lyon?", "weight": 0},
    ]  # fmt: skip
    assert pairs.get(split=ExampleSplit.EVAL).prompt == "Capital of Italy?"
    assert (run.snapshot.n_train + run.snapshot.n_validation, run.snapshot.n_eval) == (4, 1)
    assert lead_client.fine_tuning.jobs.retrieve(job.id).status == "queued"


def test_a_file_with_blocked_tags_makes_a_guardrail_run_and_one_without_a_general_run(lead_client):
    guardrail = [{"messages": line["messages"], "tags": ["blocked:medical"] if n % 2 else ["allowed:greetings"]}
                 for n, line in enumerate(CHAT_LINES * 5)]  # fmt: skip

    tagged = lead_client.fine_tuning.jobs.create(model=TINY, training_file=upload(lead_client, guardrail))
    plain = lead_client.fine_tuning.jobs.create(model=TINY, training_file=upload(lead_client, CHAT_LINES * 2))

    run = TrainingRun.objects.get(pk=int(tagged.id.removeprefix("ftjob-")))
    assert (run.snapshot.dataset.kind, run.snapshot.kind) == ("guardrail", "guardrail")
    rows = snapshot_rows(run.snapshot)
    assert {row.tags[0] for row in rows} == {"blocked:medical", "allowed:greetings"}
    # guardrail snapshots hold blocked and allowed prompts out for the evaluation, as a dashboard run's
    held_out = [row for row in rows if row.split == "validation"]
    assert {row.blocked for row in held_out} == {True, False}
    general = TrainingRun.objects.get(pk=int(plain.id.removeprefix("ftjob-")))
    assert general.snapshot.dataset.kind == "general"


def test_method_supervised_takes_hyperparameters_and_auto_means_the_defaults(lead_client):
    training = upload(lead_client, CHAT_LINES)
    job = lead_client.fine_tuning.jobs.create(
        model=TINY, training_file=training,
        method={"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": 2, "batch_size": "auto"}}},
    )  # fmt: skip
    assert (job.hyperparameters.n_epochs, job.hyperparameters.batch_size) == (2, 8)
    assert job.hyperparameters.learning_rate_multiplier == 1.0
    assert job.seed == 42
    assert TrainingRun.objects.get().hyperparameters["learning_rate"] == pytest.approx(1e-3)


def test_jobs_are_listed_newest_first_a_page_at_a_time(lead_client):
    training = upload(lead_client, CHAT_LINES)
    made = [lead_client.fine_tuning.jobs.create(model=TINY, training_file=training).id for _ in range(3)]

    first = lead_client.fine_tuning.jobs.list(limit=2)

    assert [job.id for job in first.data] == made[:0:-1]
    assert first.has_more
    assert [job.id for job in lead_client.fine_tuning.jobs.list(limit=2)] == made[::-1]  # the client follows `after`
    rest = lead_client.fine_tuning.jobs.list(after=made[1], limit=2)
    assert ([job.id for job in rest.data], rest.has_more) == ([made[0]], False)


def test_cancelling_a_queued_job_ends_it_at_once_and_says_so_in_its_events(lead_client):
    job = lead_client.fine_tuning.jobs.create(model=TINY, training_file=upload(lead_client, CHAT_LINES))

    cancelled = lead_client.fine_tuning.jobs.cancel(job.id)

    assert cancelled.status == "cancelled"
    assert cancelled.finished_at is not None
    assert lead_client.fine_tuning.jobs.retrieve(job.id).status == "cancelled"
    events = lead_client.fine_tuning.jobs.list_events(job.id)
    assert [event.message for event in events.data] == ["The job was cancelled", f"Created fine-tuning job: {job.id}"]
    assert events.data[0].object == "fine_tuning.job.event"
    assert list(lead_client.fine_tuning.jobs.checkpoints.list(job.id)) == []
    assert lead_client.fine_tuning.jobs.cancel(job.id).status == "cancelled"  # again: nothing changes


def refusal(call) -> openai.APIStatusError:
    with pytest.raises(openai.APIStatusError) as raised:
        call()
    return raised.value


@pytest.mark.parametrize(
    ("changes", "param", "says"),
    [
        ({"training_file": "file-doesnotexist"}, "training_file", "invalid training_file: file-doesnotexist"),
        ({"validation_file": "file-doesnotexist"}, "validation_file", "invalid validation_file"),
        ({"model": "gpt-4o-mini"}, "model", "not available for fine-tuning"),
        ({"suffix": "x" * 65}, "suffix", "at most 64"),
        ({"suffix": "a:b"}, "suffix", "at most 64"),
        ({"seed": -1}, "seed", "seed must be"),
        ({"hyperparameters": {"n_epochs": 0}}, "hyperparameters.n_epochs", "between 1 and 100"),
        ({"hyperparameters": {"n_epochs": 1.5}}, "hyperparameters.n_epochs", "whole number"),
        ({"hyperparameters": {"batch_size": "big"}}, "hyperparameters.batch_size", '"auto" or a whole number'),
        ({"hyperparameters": {"learning_rate_multiplier": 0}}, "hyperparameters.learning_rate_multiplier", "greater"),
        ({"hyperparameters": {"warmup": 1}}, "hyperparameters.warmup", "not a hyperparameter"),
        (
            {"method": {"type": "supervised", "supervised": {"hyperparameters": {"batch_size": 5000}}}},
            "method.supervised.hyperparameters.batch_size",
            "between 1 and 1024",
        ),  # fmt: skip
        ({"method": {"type": "dpo", "dpo": {}}}, "method.type", "dpo is not supported yet"),
    ],
)
def test_a_bad_request_is_refused_naming_its_param_and_nothing_is_made(lead_client, changes, param, says):
    body = {"model": TINY, "training_file": upload(lead_client, CHAT_LINES), **changes}
    refused = refusal(lambda: lead_client.fine_tuning.jobs.create(**body))
    assert isinstance(refused, openai.BadRequestError)
    assert (refused.param, refused.type) == (param, "invalid_request_error")
    assert says in refused.message
    assert not TrainingRun.objects.exists()
    assert not Dataset.objects.exists()


def test_a_job_trains_on_the_answers_its_file_weights_1_and_not_those_it_weights_0(lead_client):
    line = {"messages": [
        {"role": "user", "content": "Capital of France?"}, {"role": "assistant", "content": "Lyon?", "weight": 0},
        {"role": "user", "content": "Sure?"}, {"role": "assistant", "content": "Paris, sorry.", "weight": 1},
        {"role": "user", "content": "Thanks."}, {"role": "assistant", "content": "You're welcome."},
    ]}  # fmt: skip
    training = upload(lead_client, [line, *CHAT_LINES])

    lead_client.fine_tuning.jobs.create(model=TINY, training_file=training)

    # the run's snapshot holds the weights as the file gave them, and training encodes its rows with them
    snapshot = TrainingRun.objects.get().snapshot
    (row,) = [row for row in snapshot_rows(snapshot) if row.prompt == "Thanks."]
    assert row.history == line["messages"][:4]
    chat = ChatExample(prompt=row.prompt, response=row.response, system=row.system, history=row.history)  # as run
    encoded = encode(tiny_tokenizer(), chat, 512)
    trained = tiny_tokenizer().decode([label for label in encoded.labels if label != IGNORE_INDEX])
    assert trained == "Paris, sorry.<|im_end|>You're welcome.<|im_end|>"


def test_a_file_that_cannot_be_trained_on_is_refused_naming_the_line(lead_client):
    preference = upload(lead_client, [PREFERENCE_LINE], "prefs.jsonl")
    refused = refusal(lambda: lead_client.fine_tuning.jobs.create(model=TINY, training_file=preference))
    assert (refused.status_code, refused.param) == (400, "training_file")
    assert "chat file" in refused.message
    # a good file for OpenAI's checks whose last message is not the assistant's: nothing to learn as the answer
    ends_with_user = {"messages": [{"role": "assistant", "content": "Hi."}, {"role": "user", "content": "Bye."}]}
    odd = upload(lead_client, [*CHAT_LINES, ends_with_user])
    refused = refusal(lambda: lead_client.fine_tuning.jobs.create(model=TINY, training_file=odd))
    assert refused.param == "training_file"
    assert "line 3: messages must end with the assistant's turn" in refused.message
    one_pair = upload(lead_client, CHAT_LINES[:1])
    refused = refusal(lambda: lead_client.fine_tuning.jobs.create(model=TINY, training_file=one_pair))
    assert refused.param == "training_file"
    assert "at least 2 approved pairs" in refused.message
    # a good file for OpenAI's checks whose final answer has weight 0: the response is always trained on here
    last_weight_0 = {
        "messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Yo", "weight": 0}]
    }
    refused = refusal(
        lambda: lead_client.fine_tuning.jobs.create(model=TINY, training_file=upload(lead_client, [last_weight_0]))
    )
    assert refused.param == "training_file"
    assert "line 1: messages[1].weight is 0, but the final assistant turn is the pair's response" in refused.message
    assert not TrainingRun.objects.exists()
    assert not Dataset.objects.exists()


def test_an_annotator_key_may_read_jobs_but_not_start_or_cancel_them(client_with, lead_client, annotator_key):
    training = upload(lead_client, CHAT_LINES)
    job = lead_client.fine_tuning.jobs.create(model=TINY, training_file=training)
    annotator = client_with(annotator_key)

    assert annotator.fine_tuning.jobs.retrieve(job.id).id == job.id
    for call in (
        lambda: annotator.fine_tuning.jobs.create(model=TINY, training_file=training),
        lambda: annotator.fine_tuning.jobs.cancel(job.id),
    ):
        refused = refusal(call)
        assert isinstance(refused, openai.PermissionDeniedError)
        assert refused.code == "insufficient_permissions"
    assert TrainingRun.objects.get().status == RunStatus.QUEUED
    assert FineTuningJob.objects.count() == 1


def test_a_key_of_another_workspace_sees_no_job_of_this_one(client_with, lead_client, key_of, other_admin):
    training = upload(lead_client, CHAT_LINES)
    job = lead_client.fine_tuning.jobs.create(model=TINY, training_file=training)
    theirs = client_with(key_of("lead", by=other_admin))

    assert list(theirs.fine_tuning.jobs.list()) == []
    for call in (
        lambda: theirs.fine_tuning.jobs.retrieve(job.id),
        lambda: theirs.fine_tuning.jobs.cancel(job.id),
        lambda: theirs.fine_tuning.jobs.list_events(job.id),
        lambda: theirs.fine_tuning.jobs.checkpoints.list(job.id),
    ):
        assert isinstance(refusal(call), openai.NotFoundError)
    # their own job on our file: the file is not theirs either
    refused = refusal(lambda: theirs.fine_tuning.jobs.create(model=TINY, training_file=training))
    assert (refused.status_code, refused.param) == (400, "training_file")
    assert TrainingRun.objects.get().status == RunStatus.QUEUED


def test_unknown_job_ids_raise_not_found(lead_client):
    for job_id in ("ftjob-999999", "ftjob-abc", "nothing"):
        refused = refusal(lambda job_id=job_id: lead_client.fine_tuning.jobs.retrieve(job_id))
        assert isinstance(refused, openai.NotFoundError)
