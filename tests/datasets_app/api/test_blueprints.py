"""The templates API: who may see and change templates, previews, generation and the generator list."""

import pytest

from datasets_app.blueprints.services import template_create
from datasets_app.models import Example, Template
from tests.api_client import client_for
from tests.datasets_app.blueprints.test_services import GUARDRAIL, MCQ

pytestmark = pytest.mark.django_db


@pytest.fixture
def template(workspace, lead):
    return template_create(workspace=workspace, user=lead, name="Kitchen", kind="guardrail", spec=GUARDRAIL)


def test_a_lead_creates_a_template_and_members_see_it(workspace, lead, annotator):
    body = {"workspace": workspace.pk, "name": "Biology", "kind": "mcq", "spec": MCQ}

    created = client_for(lead).post("/api/templates/", body, format="json")

    assert created.status_code == 201, created.content
    assert created.json()["spec"]["label_style"] == "A)"
    listed = client_for(annotator).get(f"/api/templates/?workspace={workspace.pk}").json()
    assert [t["name"] for t in listed] == ["Biology"]


def test_a_new_template_without_a_spec_starts_from_the_kinds_default(workspace, lead):
    created = client_for(lead).post("/api/templates/", {"workspace": workspace.pk, "name": "G", "kind": "guardrail"})

    assert created.status_code == 201, created.content
    assert created.json()["spec"]["refusal"]


def test_a_bad_spec_gets_a_400_naming_the_field(workspace, lead):
    spec = {**MCQ, "options": 9}

    response = client_for(lead).post(
        "/api/templates/", {"workspace": workspace.pk, "name": "M", "kind": "mcq", "spec": spec}, format="json"
    )

    assert response.status_code == 400
    assert "options" in str(response.json()["spec"])
    assert not Template.objects.filter(name="M").exists()


def test_annotators_may_read_but_not_change_templates(template, annotator):
    client = client_for(annotator)

    assert client.get(f"/api/templates/{template.pk}/").status_code == 200
    assert (
        client.patch(f"/api/templates/{template.pk}/", {"name": "Mine", "version": 1}, format="json").status_code == 403
    )
    assert client.delete(f"/api/templates/{template.pk}/").status_code == 403
    assert client.post(f"/api/templates/{template.pk}/generate/", {"dataset": 1}).status_code in (403, 404)
    assert Template.objects.get(pk=template.pk).name == "Kitchen"


def test_outsiders_do_not_see_the_template(template, outsider):
    client = client_for(outsider)

    assert client.get(f"/api/templates/{template.pk}/").status_code == 404
    assert client.post(f"/api/templates/{template.pk}/preview/", {}).status_code == 404
    assert client.get("/api/templates/").json() == []


def test_edits_need_the_loaded_version_and_a_stale_one_is_refused(template, lead):
    client = client_for(lead)
    etag = client.get(f"/api/templates/{template.pk}/")["ETag"]

    assert client.patch(f"/api/templates/{template.pk}/", {"name": "A"}).status_code == 428
    assert client.patch(f"/api/templates/{template.pk}/", {"name": "B"}, HTTP_IF_MATCH=etag).status_code == 200
    stale = client.patch(f"/api/templates/{template.pk}/", {"name": "C"}, HTTP_IF_MATCH=etag)

    assert stale.status_code == 412
    assert Template.objects.get(pk=template.pk).name == "B"


def test_preview_lists_the_pairs_and_marks_existing_prompts(template, dataset, lead, annotator):
    from datasets_app.curation.services import example_create

    example_create(
        dataset=dataset,
        user=annotator,
        system_prompt=GUARDRAIL["system_prompt"],
        prompt="is this mole CANCEROUS?",
        response="",
    )

    body = client_for(lead).post(f"/api/templates/{template.pk}/preview/", {"dataset": dataset.pk}).json()

    assert (body["new"], body["existing"]) == (4, 1)
    first = body["pairs"][0]
    assert first["response"].startswith("I'm sorry, but I can't help with medical advice.")
    assert first["tags"] == ["blocked:medical-advice"]
    assert Example.objects.filter(dataset=dataset).count() == 1


def test_generate_without_a_model_writes_the_pairs_now(template, dataset, lead):
    response = client_for(lead).post(f"/api/templates/{template.pk}/generate/", {"dataset": dataset.pk})

    assert response.status_code == 201, response.content
    assert response.json() == {"created": 5, "skipped": 0, "drafted": 0, "paraphrased": 0, "cut": 0}


def test_generate_with_an_unknown_backend_is_refused(template, dataset, lead):
    response = client_for(lead).post(
        f"/api/templates/{template.pk}/generate/", {"dataset": dataset.pk, "generator": "nope"}
    )

    assert response.status_code == 400
    assert "nope" in str(response.json()["generator"])
    assert not Example.objects.exists()


def test_draft_responses_needs_a_lead_and_prompts_that_lack_responses(dataset, lead, annotator):
    assert client_for(annotator).post(f"/api/datasets/{dataset.pk}/draft-responses/", {}).status_code == 403

    response = client_for(lead).post(f"/api/datasets/{dataset.pk}/draft-responses/", {})

    assert response.status_code == 409
    assert response.json() == {"detail": "no draft without a response was chosen"}


def test_the_generator_list_names_backends_without_secrets(lead, settings):
    settings.GENERATORS = {
        **settings.GENERATORS,
        "openai": {
            "BACKEND": "datasets_app.blueprints.generators.OpenAIChatGenerator",
            "BASE_URL": "http://127.0.0.1:9/v1",
            "MODEL": "gpt-test",
            "API_KEY": "sk-very-secret",
            "LABEL": "Hosted model",
        },
    }

    response = client_for(lead).get("/api/generators/")

    assert {item["key"] for item in response.json()} >= {"local", "openai"}
    assert "sk-very-secret" not in response.content.decode()
