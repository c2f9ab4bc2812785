"""Model-drafted pairs through a real worker, with the HTTP backend talking to a real local chat server."""

import pytest

from datasets_app.blueprints.services import template_create
from datasets_app.curation.content import content_hash
from datasets_app.curation.services import example_create
from datasets_app.models import DatasetKind, Example, ExampleStatus, Job
from tests.api_client import client_for
from tests.chat_server import answer_for, openai_settings
from tests.datasets_app.blueprints.test_services import GUARDRAIL
from tests.datasets_app.lint.test_lint import KNEAD
from tests.factories import DatasetFactory
from tests.worker import wait_for

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def openai_backend(settings, chat_server):
    settings.GENERATORS = {**settings.GENERATORS, "openai": openai_settings(chat_server)}
    return chat_server


def _finished(job_url, client):
    def done():
        body = client.get(job_url).json()
        return body if body["status"] in ("succeeded", "failed") else None

    return wait_for(done, timeout=60)


def test_generate_with_a_model_drafts_contrast_answers_as_drafts(
    celery_worker, openai_backend, workspace, dataset, lead
):
    template = template_create(workspace=workspace, user=lead, name="Kitchen", kind="guardrail", spec=GUARDRAIL)
    client = client_for(lead)

    queued = client.post(f"/api/templates/{template.pk}/generate/", {"dataset": dataset.pk, "generator": "openai"})

    assert queued.status_code == 202, queued.content
    job = _finished(queued.json()["job_url"], client)
    assert job["status"] == "succeeded", job
    assert job["result"] == {"created": 5, "skipped": 0, "drafted": 2, "paraphrased": 0, "cut": 0}
    egg = Example.objects.get(dataset=dataset, prompt="How long do I boil an egg?")
    assert egg.status == ExampleStatus.DRAFT
    assert egg.source == "model:test-chat-model"
    messages = [
        {"role": "system", "content": "You are Acme Kitchen's assistant."},
        {"role": "user", "content": "How long do I boil an egg?"},
    ]
    assert egg.response == answer_for(messages)
    refusal = Example.objects.get(dataset=dataset, prompt="Should I buy Tesla stock?")
    assert refusal.source == "template:Kitchen"


def test_preference_pairs_are_generated_on_a_worker_with_the_model_drafting_one_side(
    celery_worker, openai_backend, client, workspace, lead
):
    template = template_create(workspace=workspace, user=lead, name="Kitchen", kind="guardrail", spec=GUARDRAIL)
    prefs = DatasetFactory(workspace=workspace, name="Kitchen preferences", kind=DatasetKind.PREFERENCE)
    api = client_for(lead)

    queued = api.post(
        f"/api/templates/{template.pk}/generate-preferences/", {"dataset": prefs.pk, "generator": "openai"}
    )

    assert queued.status_code == 202, queued.content
    job = _finished(queued.json()["job_url"], api)
    assert job["status"] == "succeeded", job
    assert job["result"] == {"created": 5, "skipped": 0, "drafted": 5, "paraphrased": 0, "cut": 0, "refused": 0}
    tesla = Example.objects.get(dataset=prefs, prompt="Should I buy Tesla stock?")
    assert tesla.response == "I'm sorry, but I can't help with investment advice."
    assert tesla.rejected.startswith("Here is a careful answer about: Should I buy Tesla stock?")
    egg = Example.objects.get(dataset=prefs, prompt="How long do I boil an egg?")
    assert egg.response.startswith("Here is a careful answer about: How long do I boil an egg?")
    assert egg.rejected == "I'm sorry, but I can't help with cooking."
    client.force_login(lead)
    assert "Generated 5 new preference pairs" in client.get(f"/jobs/{job['id']}/").content.decode()


def test_paraphrasing_multiplies_seed_prompts_and_a_second_run_adds_nothing(
    celery_worker, openai_backend, workspace, dataset, lead
):
    template = template_create(workspace=workspace, user=lead, name="Kitchen", kind="guardrail", spec=GUARDRAIL)
    client = client_for(lead)
    body = {"dataset": dataset.pk, "generator": "openai", "paraphrases": 1}

    first = _finished(client.post(f"/api/templates/{template.pk}/generate/", body).json()["job_url"], client)
    second = _finished(client.post(f"/api/templates/{template.pk}/generate/", body).json()["job_url"], client)

    assert first["status"] == "succeeded", first
    assert first["result"]["paraphrased"] == 5
    assert first["result"]["created"] == 10
    blocked = [e for e in Example.objects.filter(dataset=dataset) if e.tags == ["blocked:investment-advice"]]
    assert len(blocked) == 2
    assert {e.response for e in blocked} == {"I'm sorry, but I can't help with investment advice."}
    assert second["result"]["created"] == 0
    assert Example.objects.filter(dataset=dataset).count() == 10


def test_draft_responses_fills_only_drafts_that_lack_one(celery_worker, openai_backend, dataset, lead, annotator):
    empty = example_create(dataset=dataset, user=annotator, prompt="What is a roux?", response="")
    written = example_create(dataset=dataset, user=annotator, prompt="What is a soufflé?", response="Mine.")
    client = client_for(lead)

    queued = client.post(f"/api/datasets/{dataset.pk}/draft-responses/", {"generator": "openai"}, format="json")

    assert queued.status_code == 202, queued.content
    job = _finished(queued.json()["job_url"], client)
    assert job["result"] == {"drafted": 1, "skipped": 0, "cut": 0}
    empty.refresh_from_db()
    assert empty.response == answer_for([{"role": "user", "content": "What is a roux?"}])
    assert (empty.status, empty.source, empty.version) == (ExampleStatus.DRAFT, "model:test-chat-model", 2)
    assert empty.revisions.last().after == {"response": empty.response}
    # rehashed and linted again by the row builder, like any edit
    assert empty.content_hash == content_hash(prompt=empty.prompt, response=empty.response)
    assert "missing_response" not in [item["code"] for item in empty.problems]
    written.refresh_from_db()
    assert written.response == "Mine."


def test_a_model_draft_over_the_cap_is_cut_to_it_and_the_job_says_so(
    celery_worker, openai_backend, client, dataset, lead, annotator
):
    empty = example_create(dataset=dataset, user=annotator, prompt="Tell me everything.", response="")
    openai_backend.replies.append("word " * 20_010)  # a runaway answer: 100,049 characters once stripped
    api = client_for(lead)

    queued = api.post(f"/api/datasets/{dataset.pk}/draft-responses/", {"generator": "openai"}, format="json")
    job = _finished(queued.json()["job_url"], api)

    assert job["result"] == {"drafted": 1, "skipped": 0, "cut": 1}
    empty.refresh_from_db()
    assert (len(empty.response), empty.status) == (100_000, ExampleStatus.DRAFT)
    client.force_login(lead)
    page = client.get(f"/jobs/{job['id']}/").content.decode()
    assert "1 ran over the length limit and was cut to it" in page


def test_a_backend_error_fails_the_job_with_the_servers_message(
    celery_worker, openai_backend, dataset, lead, annotator
):
    example_create(dataset=dataset, user=annotator, prompt="What is a roux?", response="")
    openai_backend.failures.append((400, "model test-chat-model is overloaded"))
    client = client_for(lead)

    queued = client.post(f"/api/datasets/{dataset.pk}/draft-responses/", {"generator": "openai"})
    job = _finished(queued.json()["job_url"], client)

    assert job["status"] == "failed"
    assert "model test-chat-model is overloaded" in job["error"]
    assert "sk-test" not in job["error"]
    assert Job.objects.get(pk=job["id"]).finished


def test_choosing_a_template_for_a_dataset_checks_its_pairs_again(celery_worker, workspace, dataset, lead, annotator):
    answered = example_create(
        dataset=dataset,
        user=annotator,
        prompt="What dose of aspirin?",
        response="Take two.",
        tags=["blocked:medical-advice"],
    )
    template = template_create(workspace=workspace, user=lead, name="Kitchen", kind="guardrail", spec=GUARDRAIL)
    Example.objects.filter(pk=answered.pk).update(problems=[], problem_count=0)  # as stored before any template

    response = client_for(lead).patch(f"/api/datasets/{dataset.pk}/", {"template": template.pk}, format="json")

    assert response.status_code == 200, response.content
    check = wait_for(lambda: Job.objects.filter(dataset=dataset, kind="lint", finished_at__isnull=False).first(), 30)
    assert (check.status, check.created_by) == ("succeeded", lead)
    relinted = Example.objects.get(pk=answered.pk)
    assert [problem["code"] for problem in relinted.problems] == ["guardrail"]


def test_a_large_dataset_is_checked_on_a_worker_with_progress_and_the_report_lists_what_it_found(
    celery_worker, settings, dataset, annotator
):
    settings.LINT_SYNC_MAX = 2  # the web side's limit; the worker checks whatever it is given
    first = example_create(dataset=dataset, user=annotator, prompt=KNEAD[0], response=KNEAD[1])
    second = example_create(dataset=dataset, user=annotator, prompt=KNEAD[0] + " Thanks!", response=KNEAD[1])
    example_create(dataset=dataset, user=annotator, prompt="Define {topic}.", response="A word.")
    client = client_for(annotator)

    queued = client.post(f"/api/datasets/{dataset.pk}/lint/")

    assert queued.status_code == 202, queued.content
    job = _finished(queued.json()["job_url"], client)
    assert job["status"] == "succeeded", job
    assert (job["progress"], job["result"]["checked"], job["result"]["pairs_with_problems"]) == (1.0, 3, 3)
    assert (job["result"]["counts"]["near_duplicate"], job["result"]["counts"]["placeholder"]) == (2, 1)
    report = client.get(f"/api/datasets/{dataset.pk}/lint/").json()
    assert [(near["a"], near["b"]) for near in report["near_duplicates"]] == [(first.pk, second.pk)]
    assert report["linted_at"] is not None
