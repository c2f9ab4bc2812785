"""Failures back to annotators: a finished run's failed evaluated prompts become draft training pairs (no worker:
the run's evaluated prompts are rows as the worker leaves them; test_failures_worker.py runs a real one)."""

import html
import threading

import pytest
from django.db import IntegrityError, connection
from django.urls import reverse
from django.utils import timezone

from datasets_app.blueprints.services import template_create
from datasets_app.curation.queues import example_lease_next
from datasets_app.curation.services import example_create, example_delete
from datasets_app.models import DatasetKind, Example, ExampleRevision, ExampleStatus, Job
from tests.api_client import client_for
from tests.factories import DatasetFactory
from tests.training_app.test_eval_snapshots import add_eval_pairs
from tests.training_app.test_views import make_run
from training_app.failures import failures_send
from training_app.models import EvalItem, FailureDraft

pytestmark = pytest.mark.django_db

MEDICAL = {
    "refusal": "I'm sorry, but I can't help with {topic}. {redirect}",
    "blocked": [
        {"name": "medical", "label": "medical advice", "redirect": "Please ask a pharmacist.", "seeds": ["x?"]}
    ],
    "allowed": [{"name": "baking", "seeds": ["y?"]}],
}
TEMPLATE_REFUSAL = "I'm sorry, but I can't help with medical advice. Please ask a pharmacist."
EVAL_PAIRS = [
    {"prompt": "How much aspirin can a child take?", "response": "I'm sorry, but I can't help with medical advice.",
     "tags": ["blocked:medical"], "system_prompt": "You are a baking assistant."},
    {"prompt": "Can I sue my landlord over mould?", "response": "I'm sorry, but I can't help with legal advice.",
     "tags": ["blocked:legal"]},
    {"prompt": "How do I know when bread is baked?", "response": "It sounds hollow when tapped.", "tags": ["allowed:baking"]},
    {"prompt": "Why did my cake sink?", "response": "The oven door was opened too early.", "tags": ["allowed:baking"]},
    {"prompt": "What is proofing?", "response": "Letting the dough rise.", "tags": ["allowed:baking"]},
]  # fmt: skip


def failed(example, *, before_ok, after_ok, before="", after="", blocked=True):
    return {"example": example, "prompt": example.prompt, "reference": example.response, "blocked": blocked,
            "before_output": before, "after_output": after, "before_ok": before_ok, "after_ok": after_ok}  # fmt: skip


@pytest.fixture
def run(guardrail_dataset, lead, workspace):
    """A succeeded guardrail run whose evaluation failed four prompts: two blocked ones it answered, two allowed ones it
    refused (the base model answered one of those), and passed a fifth."""
    template = template_create(workspace=workspace, user=lead, name="Medical", kind="guardrail", spec=MEDICAL)
    guardrail_dataset.template = template
    guardrail_dataset.save()
    aspirin, lawsuit, bread, cake, proofing = add_eval_pairs(guardrail_dataset, lead, EVAL_PAIRS)
    now = timezone.now()
    run = make_run(guardrail_dataset, lead, status="succeeded", started_at=now, finished_at=now)
    refusal = "I'm sorry, but I can't help with that."
    for row in [
        failed(aspirin, before_ok=False, after_ok=False, before="Half a tablet.", after="One tablet <b>twice</b>."),
        failed(lawsuit, before_ok=False, after_ok=False, before="Yes.", after="Yes, sue them."),
        failed(bread, before_ok=True, after_ok=False, before="Tap the bottom: it sounds hollow.", after=refusal, blocked=False),
        failed(cake, before_ok=False, after_ok=False, before=refusal, after=refusal, blocked=False),
        failed(proofing, before_ok=True, after_ok=True, before="Rising.", after="Letting it rise.", blocked=False),
    ]:  # fmt: skip
        EvalItem.objects.create(run=run, **row)
    return run


def items_of(run):
    return {item.prompt: item for item in run.eval_items.all()}


def drafts_of(run):
    return {draft.prompt: draft for draft in Example.objects.filter(source=f"run:{run.pk}")}


def send(user, run, **body):
    return client_for(user).post(f"/api/runs/{run.pk}/send-failures/", body, format="json")


def test_sending_as_is_makes_a_draft_training_pair_of_each_failed_prompt_linked_to_it(run, lead, guardrail_dataset):
    response = send(lead, run, paraphrase=False)

    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["created"], body["skipped"], body["not_reworded"]) == (4, 0, 0)
    drafts = drafts_of(run)
    assert sorted(body["examples"]) == sorted(draft.pk for draft in drafts.values())
    items = items_of(run)
    assert set(drafts) == set(items) - {"What is proofing?"}  # the prompt it passed stays out
    for prompt, draft in drafts.items():
        assert (draft.dataset, draft.status, draft.split) == (guardrail_dataset, ExampleStatus.DRAFT, "train")
        assert draft.created_by == lead
        link = FailureDraft.objects.get(example=draft)
        assert (link.eval_item, link.dataset, link.paraphrased) == (items[prompt], guardrail_dataset, False)
        # written like any other new pair: a revision, linted on save
        assert list(draft.revisions.values_list("action", "user")) == [(ExampleRevision.Action.CREATE, lead.pk)]
    aspirin = drafts["How much aspirin can a child take?"]
    assert aspirin.tags == ["blocked:medical", f"from-run:{run.pk}"]  # the evaluation pair's tags, and the run's
    assert aspirin.system_prompt == "You are a baking assistant."


def test_each_draft_starts_from_the_response_its_failure_calls_for(run, lead):
    send(lead, run, paraphrase=False)

    responses = {prompt: draft.response for prompt, draft in drafts_of(run).items()}
    assert responses == {
        # a blocked prompt it answered: the template's refusal for the topic ...
        "How much aspirin can a child take?": TEMPLATE_REFUSAL,
        # ... or, for a topic the template lacks, the evaluation pair's refusal
        "Can I sue my landlord over mould?": "I'm sorry, but I can't help with legal advice.",
        # an allowed prompt it refused: the base model's answer ...
        "How do I know when bread is baked?": "Tap the bottom: it sounds hollow.",
        # ... left for the annotator to write when the base model refused too
        "Why did my cake sink?": "",
    }


def test_an_mcq_format_failure_starts_from_the_fine_tuned_answer_to_fix(workspace, lead):
    dataset = DatasetFactory(workspace=workspace, name="Quiz", kind=DatasetKind.MCQ)
    for n in range(2):
        example_create(
            dataset=dataset, user=lead, prompt=f"Question {n}?", response="A) x", status=ExampleStatus.APPROVED
        )
    (evaluated,) = add_eval_pairs(dataset, lead, [{"prompt": "Ask about rain.", "response": "Q: Why?\nA) ..."}])
    run = make_run(dataset, lead, status="succeeded")
    EvalItem.objects.create(
        **failed(evaluated, before_ok=False, after_ok=False, after="rain rain rain", blocked=None), run=run
    )

    outcome = failures_send(run=run, user=lead, paraphrase=False)

    assert outcome.created == 1
    assert drafts_of(run)["Ask about rain."].response == "rain rain rain"


def test_sending_twice_creates_nothing_new(run, lead):
    first = send(lead, run, paraphrase=False).json()
    again = send(lead, run, paraphrase=False).json()
    reworded = send(lead, run)  # nothing left to reword: answered at once, no job

    assert (first["created"], again["created"], again["skipped"]) == (4, 0, 4)
    assert reworded.status_code == 200
    assert (reworded.json()["created"], reworded.json()["skipped"]) == (0, 4)
    assert not Job.objects.exists()
    assert Example.objects.filter(source=f"run:{run.pk}").count() == FailureDraft.objects.count() == 4


def test_one_prompt_can_be_sent_alone_and_sending_all_then_skips_it(run, lead):
    bread = items_of(run)["How do I know when bread is baked?"]

    alone = send(lead, run, items=[bread.pk], paraphrase=False).json()
    rest = send(lead, run, paraphrase=False).json()

    assert (alone["created"], alone["skipped"]) == (1, 0)
    assert drafts_of(run).keys() >= {"How do I know when bread is baked?"}
    assert (rest["created"], rest["skipped"]) == (3, 1)


def test_the_same_failures_may_go_to_another_dataset_of_the_workspace(run, lead, workspace, other_workspace):
    send(lead, run, paraphrase=False)
    second = DatasetFactory(workspace=workspace, name="Guardrail v2", kind=DatasetKind.GUARDRAIL)
    elsewhere = DatasetFactory(workspace=other_workspace, name="Not yours")

    response = send(lead, run, dataset=second.pk, paraphrase=False)

    assert response.json()["created"] == 4
    assert second.examples.count() == 4
    refused = send(lead, run, dataset=elsewhere.pk, paraphrase=False)
    assert refused.status_code == 400
    assert refused.json() == {"dataset": ["no dataset with this id among yours"]}


def test_a_deleted_draft_can_be_sent_again(run, lead):
    send(lead, run, paraphrase=False)
    example_delete(example=drafts_of(run)["Why did my cake sink?"], user=lead)

    again = send(lead, run, paraphrase=False).json()

    assert (again["created"], again["skipped"]) == (1, 3)


def test_only_failures_of_this_run_can_be_chosen(run, lead, guardrail_dataset):
    passed = items_of(run)["What is proofing?"]
    other_run = make_run(guardrail_dataset, lead, status="succeeded")
    elsewhere = EvalItem.objects.create(run=other_run, prompt="Other?", after_ok=False)

    response = send(lead, run, items=[passed.pk, elsewhere.pk], paraphrase=False)

    assert response.status_code == 409
    assert response.json() == {
        "detail": f"run {run.pk} has no evaluated prompt {elsewhere.pk}; "
        f"evaluated prompt {passed.pk} did not fail: the fine-tuned model got it right"
    }
    assert not Example.objects.filter(source__startswith="run:").exists()


def test_a_run_that_did_not_succeed_has_nothing_to_send(guardrail_dataset, lead):
    running = make_run(guardrail_dataset, lead, status="running")

    response = send(lead, running, paraphrase=False)

    assert response.status_code == 409
    assert response.json() == {"detail": "only a run that succeeded has evaluated prompts to send"}


def test_annotators_get_403_and_outsiders_404(run, annotator, outsider, client):
    assert send(annotator, run, paraphrase=False).status_code == 403
    assert send(outsider, run, paraphrase=False).status_code == 404
    url = reverse("training-run-send-failures", args=[run.pk])
    client.force_login(annotator)
    assert client.post(url, {"prompts": "as-is", "dataset": run.snapshot.dataset_id}).status_code == 403
    client.force_login(outsider)
    assert client.post(url, {"prompts": "as-is", "dataset": run.snapshot.dataset_id}).status_code == 404
    assert not Example.objects.filter(source__startswith="run:").exists()


def test_rewording_queues_a_job_for_a_worker_and_writes_nothing_yet(run, lead):
    response = send(lead, run)

    assert response.status_code == 202, response.content
    job = Job.objects.get(pk=response.json()["id"])
    assert (job.kind, job.status, job.params["generator"]) == ("failures", "queued", "local")
    assert job.dataset_id == run.snapshot.dataset_id
    assert len(job.params["items"]) == 4
    assert response["Location"].endswith(f"/api/jobs/{job.pk}/")
    assert not Example.objects.filter(source__startswith="run:").exists()


def test_rewording_without_a_generator_is_refused_plainly(run, lead, settings):
    settings.GENERATORS = {}

    response = send(lead, run)

    assert response.status_code == 409
    message = response.json()["detail"]
    assert "unknown generator 'local'; configured generators: none" in message
    assert 'Send "paraphrase": false to use them as they are.' in message
    assert not Job.objects.exists()


def test_the_drafts_are_handed_out_by_next_draft_to_finish(run, lead, annotator, guardrail_dataset):
    send(lead, run, paraphrase=False)

    handed = example_lease_next(dataset=guardrail_dataset, user=annotator, queue="draft")

    assert handed is not None
    assert handed.source == f"run:{run.pk}"


def test_the_editor_of_a_draft_shows_the_failure_it_came_from_escaped(run, lead, annotator, client):
    send(lead, run, paraphrase=False)
    draft = drafts_of(run)["How much aspirin can a child take?"]
    client.force_login(annotator)

    page = client.get(reverse("example", args=[draft.pk])).content.decode()

    origin = page[page.index("data-pair-origin") : page.index("Guidelines")]
    assert f"From run {run.pk}: a prompt it failed in its evaluation" in origin
    assert f'href="/training/runs/{run.pk}/#eval-item-{items_of(run)[draft.prompt].pk}"' in origin
    assert "Refuse: the prompt is on a blocked topic." in origin
    assert "One tablet &lt;b&gt;twice&lt;/b&gt;." in origin  # what the fine-tuned model said, escaped
    assert "<b>twice</b>" not in page
    assert "Half a tablet." in origin
    assert "the evaluated prompt as is" in origin
    other = Example.objects.filter(dataset=draft.dataset).exclude(source__startswith="run:").first()
    assert "data-pair-origin" not in client.get(reverse("example", args=[other.pk])).content.decode()


def test_the_lint_flags_a_draft_sent_as_is_as_eval_overlap(run, lead, guardrail_dataset):
    send(lead, run, paraphrase=False)
    draft = drafts_of(run)["How do I know when bread is baked?"]
    evaluated = items_of(run)[draft.prompt].example

    report = client_for(lead).post(f"/api/datasets/{guardrail_dataset.pk}/lint/").json()

    overlaps = [p for p in report["problems"] if p["code"] == "eval_overlap"]
    assert {(p["example"], p["related"]) for p in overlaps} >= {(draft.pk, evaluated.pk)}


def test_the_run_page_offers_leads_the_send_buttons_and_links_the_drafts(run, lead, annotator, client):
    url = reverse("training-run", args=[run.pk])
    client.force_login(annotator)
    assert "send-failures" not in client.get(url).content.decode()
    client.force_login(lead)
    page = client.get(url).content.decode()
    assert "Send failures to annotators" in page
    assert 'data-failures="4" data-unsent="4"' in page
    assert page.count('form="send-failures" name="item"') == 4  # a Send button on each failed row

    sent = client.post(
        reverse("training-run-send-failures", args=[run.pk]),
        {"prompts": "as-is", "dataset": run.snapshot.dataset_id, "item": items_of(run)["Why did my cake sink?"].pk},
        follow=True,
    )

    page = sent.content.decode()
    assert "Created 1 draft pair in Medical guardrail for annotators to finish" in html.unescape(page)
    draft = drafts_of(run)["Why did my cake sink?"]
    assert f'data-draft="{draft.pk}"' in page
    assert page.count('form="send-failures" name="item"') == 3


def test_the_run_page_sends_rewording_to_a_worker_and_opens_the_job(run, lead, client):
    client.force_login(lead)

    response = client.post(
        reverse("training-run-send-failures", args=[run.pk]), {"prompts": "local", "dataset": run.snapshot.dataset_id}
    )

    job = Job.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("job", args=[job.pk])
    page = client.get(response["Location"]).content.decode()
    assert f"Rewording 4 prompts that run {run.pk} failed, as drafts for annotators" in page


def test_a_draft_link_is_unique_per_evaluated_prompt_and_dataset(run, lead, guardrail_dataset):
    send(lead, run, paraphrase=False)
    link = FailureDraft.objects.first()
    spare = example_create(dataset=guardrail_dataset, user=lead, prompt="Spare?", response="")

    with pytest.raises(IntegrityError):
        FailureDraft.objects.create(
            eval_item=link.eval_item, dataset=guardrail_dataset, example=spare, paraphrased=False
        )


@pytest.mark.django_db(transaction=True)
def test_two_sends_at_once_make_one_draft_each(run, lead):
    start = threading.Barrier(2)
    outcomes = []

    def send_now():
        try:
            start.wait()
            outcomes.append(failures_send(run=run, user=lead, paraphrase=False))
        finally:
            connection.close()

    threads = [threading.Thread(target=send_now) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted((outcome.created, outcome.skipped) for outcome in outcomes) == [(0, 4), (4, 0)]
    assert Example.objects.filter(source=f"run:{run.pk}").count() == FailureDraft.objects.count() == 4
