"""A guardrail template's preference pairs: per blocked seed prompt the refusal chosen over a compliant answer a model
drafts, per allowed seed prompt the drafted answer chosen over the refusal; into preference datasets only.

The model is the OpenAI-compatible HTTP backend talking to a real local chat server; the generation job runs here,
in the test's process, through the service its task calls (test_jobs.py runs one on a real worker)."""

import json

import pytest
from django.test import Client
from django.urls import reverse

from datasets_app.blueprints.plans import COMPLY_SYSTEM
from datasets_app.blueprints.services import generate_job_run, template_create, template_generate
from datasets_app.errors import Conflict
from datasets_app.models import DatasetKind, Example, ExampleStatus, Job
from tests.api_client import client_for
from tests.chat_server import ChatHandler, ChatServer, answer_for, openai_settings, serving
from tests.datasets_app.blueprints.test_services import GUARDRAIL, MCQ
from tests.factories import DatasetFactory

pytestmark = pytest.mark.django_db

SYSTEM = GUARDRAIL["system_prompt"]
MEDICAL = "I'm sorry, but I can't help with medical advice. Please talk to a doctor or pharmacist."
INVESTMENT = "I'm sorry, but I can't help with investment advice."
COOKING = "I'm sorry, but I can't help with cooking."  # the refusal an over-refusing model gives an allowed prompt
BLOCKED_SEEDS = {"What dose of ibuprofen should I take?": MEDICAL, "Is this mole cancerous?": MEDICAL,
                 "Should I buy Tesla stock?": INVESTMENT}  # fmt: skip
ALLOWED_SEEDS = ["How long do I boil an egg?", "What can replace buttermilk?"]


class RefusingHandler(ChatHandler):
    """Refuses any request about a mole or buttermilk, as a cautious model does; answers the rest as usual."""

    def do_POST(self) -> None:  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        question = body["messages"][-1]["content"]
        refuses = "mole" in question or "buttermilk" in question
        content = "I'm sorry, but I can't help with that." if refuses else answer_for(body["messages"])
        self._send(200, {"choices": [{"index": 0, "message": {"role": "assistant", "content": content}}]})


@pytest.fixture(scope="module")
def refusing_server():
    server = ChatServer()
    server.RequestHandlerClass = RefusingHandler
    yield from serving(server)


@pytest.fixture
def openai_backend(settings, chat_server):
    settings.GENERATORS = {**settings.GENERATORS, "openai": openai_settings(chat_server)}
    chat_server.requests.clear()
    return chat_server


@pytest.fixture
def template(workspace, lead):
    return template_create(workspace=workspace, user=lead, name="Kitchen", kind="guardrail", spec=GUARDRAIL)


@pytest.fixture
def prefs(workspace):
    return DatasetFactory(workspace=workspace, name="Kitchen preferences", kind=DatasetKind.PREFERENCE)


def generate_with_model(template, dataset, lead, **options):
    job = template_generate(
        template=template, dataset=dataset, user=lead, generator="openai", preference=True, **options
    )
    assert isinstance(job, Job)
    generate_job_run(job_id=job.pk)
    job.refresh_from_db()
    return job


def pairs_of(dataset):
    return {example.prompt: example for example in Example.objects.filter(dataset=dataset)}


def test_a_model_drafts_the_compliant_answer_of_blocked_prompts_and_the_answer_of_allowed_ones(
    openai_backend, template, prefs, lead
):
    job = generate_with_model(template, prefs, lead)

    assert job.status == "succeeded", job.error
    assert job.result == {"created": 5, "skipped": 0, "drafted": 5, "paraphrased": 0, "cut": 0, "refused": 0}
    pairs = pairs_of(prefs)
    for seed, refusal in BLOCKED_SEEDS.items():
        blocked = pairs[seed]
        compliant = answer_for([{"role": "system", "content": COMPLY_SYSTEM}, {"role": "user", "content": seed}])
        assert (blocked.response, blocked.rejected) == (refusal, compliant)
        # the refusal is the template's, the model's answer only the foil: ready for review
        assert (blocked.status, blocked.system_prompt, blocked.source) == (
            ExampleStatus.SUBMITTED, SYSTEM, "model:test-chat-model"
        )  # fmt: skip
    assert pairs["Should I buy Tesla stock?"].tags == ["blocked:investment-advice"]
    for seed in ALLOWED_SEEDS:
        allowed = pairs[seed]
        answer = answer_for([{"role": "system", "content": SYSTEM}, {"role": "user", "content": seed}])
        assert (allowed.response, allowed.rejected, allowed.tags) == (answer, COOKING, ["allowed:cooking"])
        assert allowed.status == ExampleStatus.DRAFT  # a model's answer is checked by an annotator
    # the blocked prompts were asked without the guardrail's system prompt, which may make a model refuse
    asked = {
        request["messages"][-1]["content"]: request["messages"][0]["content"] for request in openai_backend.requests
    }
    assert {asked[seed] for seed in BLOCKED_SEEDS} == {COMPLY_SYSTEM}
    assert {asked[seed] for seed in ALLOWED_SEEDS} == {SYSTEM}
    prefs.refresh_from_db()
    assert prefs.template == template

    again = generate_with_model(template, prefs, lead)

    assert (again.result["created"], again.result["skipped"]) == (0, 5)
    assert Example.objects.filter(dataset=prefs).count() == 5


def test_a_draft_that_refuses_leaves_its_pair_a_draft_and_is_counted(settings, refusing_server, template, prefs, lead):
    settings.GENERATORS = {**settings.GENERATORS, "openai": openai_settings(refusing_server)}

    job = generate_with_model(template, prefs, lead)

    assert (job.result["created"], job.result["refused"]) == (5, 2)
    pairs = pairs_of(prefs)
    mole, tesla = pairs["Is this mole cancerous?"], pairs["Should I buy Tesla stock?"]
    assert (mole.rejected, mole.status) == ("I'm sorry, but I can't help with that.", ExampleStatus.DRAFT)
    assert tesla.status == ExampleStatus.SUBMITTED
    buttermilk = pairs["What can replace buttermilk?"]
    assert (buttermilk.response, buttermilk.status) == ("I'm sorry, but I can't help with that.", ExampleStatus.DRAFT)
    page = _browser(lead).get(reverse("job", args=[job.pk])).content.decode()
    assert "Generated 5 new preference pairs" in page
    assert "2 of the drafts refused, so their pairs lack the contrast" in page


def test_paraphrases_carry_the_refusal_and_a_drafted_foil(openai_backend, template, prefs, lead):
    job = generate_with_model(template, prefs, lead, paraphrases=1)

    assert job.status == "succeeded", job.error
    assert (job.result["paraphrased"], job.result["created"]) == (5, 10)
    medical = [e for e in Example.objects.filter(dataset=prefs) if e.tags == ["blocked:medical-advice"]]
    assert len(medical) == 4
    assert {e.response for e in medical} == {MEDICAL}
    assert all(e.rejected.startswith("Here is a careful answer about:") for e in medical)


def test_without_a_model_the_drafted_side_is_left_for_annotators(template, prefs, lead):
    outcome = template_generate(template=template, dataset=prefs, user=lead, preference=True)

    assert outcome.as_dict() == {"created": 5, "skipped": 0, "drafted": 0, "paraphrased": 0, "cut": 0, "refused": 0}
    pairs = pairs_of(prefs)
    assert {(pairs[seed].response, pairs[seed].rejected) for seed in BLOCKED_SEEDS} == {(MEDICAL, ""), (INVESTMENT, "")}
    assert {(pairs[seed].response, pairs[seed].rejected) for seed in ALLOWED_SEEDS} == {("", COOKING)}
    assert {pair.status for pair in pairs.values()} == {ExampleStatus.DRAFT}
    assert {pair.source for pair in pairs.values()} == {"template:Kitchen"}


def test_preference_pairs_go_only_into_preference_datasets_and_come_only_from_guardrail_templates(
    template, prefs, dataset, workspace, lead
):
    with pytest.raises(
        Conflict,
        match="'Guardrails' is a dataset of kind Guardrail: these pairs go into a dataset of kind Preference pairs",
    ):
        template_generate(template=template, dataset=dataset, user=lead, preference=True)
    with pytest.raises(Conflict, match="is a dataset of kind Preference pairs: these pairs go into another kind"):
        template_generate(template=template, dataset=prefs, user=lead)
    quiz = template_create(workspace=workspace, user=lead, name="Quiz", kind="mcq", spec=MCQ)
    with pytest.raises(Conflict, match="preference pairs come from a guardrail template"):
        template_generate(template=quiz, dataset=prefs, user=lead, preference=True)
    assert not Example.objects.exists()


# --- the API and the template page


def test_the_api_generates_preference_pairs_for_leads_only(template, prefs, dataset, lead, annotator, outsider):
    url = f"/api/templates/{template.pk}/generate-preferences/"

    created = client_for(lead).post(url, {"dataset": prefs.pk}, format="json")

    assert created.status_code == 201, created.content
    assert created.json() == {"created": 5, "skipped": 0, "drafted": 0, "paraphrased": 0, "cut": 0, "refused": 0}
    assert client_for(annotator).post(url, {"dataset": prefs.pk}, format="json").status_code == 403
    assert client_for(outsider).post(url, {"dataset": prefs.pk}, format="json").status_code == 404
    wrong = client_for(lead).post(url, {"dataset": dataset.pk}, format="json")
    assert wrong.status_code == 409
    assert "is a dataset of kind Guardrail" in wrong.json()["detail"]
    supervised = client_for(lead).post(f"/api/templates/{template.pk}/generate/", {"dataset": prefs.pk}, format="json")
    assert supervised.status_code == 409
    assert Example.objects.filter(dataset=prefs).count() == 5


def _browser(user):
    browser = Client()
    browser.force_login(user)
    return browser


def test_the_template_page_generates_preference_pairs(template, prefs, dataset, lead, annotator):
    page = _browser(lead).get(reverse("template", args=[template.pk])).content.decode()
    action = reverse("template-generate-preferences", args=[template.pk])
    assert f'formaction="{action}"' in page
    assert (
        "data-generate-preferences-button"
        not in _browser(annotator).get(reverse("template", args=[template.pk])).content.decode()
    )

    response = _browser(lead).post(action, {"dataset": prefs.pk, "generator": ""}, follow=True)

    assert response.redirect_chain[-1][0].startswith(reverse("dataset", args=[prefs.pk]))
    assert "Generated 5 new preference pairs from Kitchen" in response.content.decode()
    refused = _browser(lead).post(action, {"dataset": dataset.pk, "generator": ""}, follow=True).content.decode()
    assert "is a dataset of kind Guardrail: these pairs go into a dataset of kind Preference pairs" in refused
    assert _browser(annotator).post(action, {"dataset": prefs.pk, "generator": ""}).status_code == 403
    assert Example.objects.count() == 5
