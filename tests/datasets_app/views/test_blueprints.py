"""Template pages in the browser workspace: who may do what, the edit form per kind, preview, generate, drafting."""

import pytest
from django.urls import reverse

from datasets_app.blueprints.services import template_create, template_update
from datasets_app.curation.services import example_create
from datasets_app.models import Example, ExampleStatus, Job, Template
from tests.datasets_app.blueprints.test_services import GUARDRAIL
from tests.datasets_app.views.test_access import INLINE
from tests.datasets_app.views.test_xss import PAYLOAD, SCRIPT, assert_inert
from tests.factories import DatasetFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def template(workspace, lead):
    return template_create(workspace=workspace, user=lead, name="Kitchen guardrails", kind="guardrail", spec=GUARDRAIL)


def form_of(template, **changes):
    """The edit form as the browser posts it for the template's current spec, with `changes` applied."""
    spec = template.spec
    data = {
        "version": template.version,
        "name": template.name,
        "description": template.description,
        "system_prompt": spec["system_prompt"],
        "refusal": spec["refusal"],
        "paraphrases": spec["paraphrases"],
    }
    for name in ("blocked", "allowed"):
        for index, topic in enumerate(spec[name]):
            for key in ("name", "label", "description", "redirect"):
                if key in topic:
                    data[f"{name}-{index}-{key}"] = topic[key]
            data[f"{name}-{index}-seeds"] = "\r\n".join(topic["seeds"])
    return {**data, **changes}


def edit_url(template):
    return reverse("template", args=[template.pk])


def test_annotators_may_look_and_preview_but_not_change_anything(client, template, dataset, annotator):
    client.force_login(annotator)
    assert client.get(reverse("templates")).status_code == 200
    page = client.get(edit_url(template)).content.decode()
    assert "Kitchen guardrails" in page
    assert "data-save-template" not in page
    assert "data-generate-button" not in page
    preview = client.post(reverse("template-preview", args=[template.pk]), {"dataset": dataset.pk})
    assert preview.status_code == 200

    refused = [
        client.get(reverse("template-new", args=[template.workspace_id])),
        client.post(reverse("template-new", args=[template.workspace_id]), {"name": "Mine", "kind": "mcq"}),
        client.post(edit_url(template), form_of(template, refusal="No {topic}.")),
        client.post(edit_url(template), form_of(template, op="add-blocked")),
        client.post(reverse("template-generate", args=[template.pk]), {"dataset": dataset.pk}),
        client.post(reverse("template-delete", args=[template.pk])),
        client.post(reverse("dataset-draft", args=[dataset.pk]), {"selected": "1:1", "generator": "local"}),
    ]

    assert [response.status_code for response in refused] == [403] * len(refused)
    template.refresh_from_db()
    assert (template.version, template.spec["refusal"]) == (1, GUARDRAIL["refusal"])
    assert not Example.objects.exists()
    assert not Job.objects.exists()
    assert Template.objects.count() == 1


def test_outsiders_get_404_and_do_not_see_the_template_listed(client, template, dataset, outsider):
    client.force_login(outsider)
    assert "Kitchen guardrails" not in client.get(reverse("templates")).content.decode()
    responses = [
        client.get(reverse("workspace-templates", args=[template.workspace_id])),
        client.get(reverse("template-new", args=[template.workspace_id])),
        client.get(edit_url(template)),
        client.post(edit_url(template), form_of(template, refusal="No {topic}.")),
        client.post(reverse("template-preview", args=[template.pk]), {"dataset": dataset.pk}),
        client.post(reverse("template-generate", args=[template.pk]), {"dataset": dataset.pk}),
        client.post(reverse("template-delete", args=[template.pk])),
        client.post(reverse("dataset-draft", args=[dataset.pk]), {"selected": "1:1"}),
    ]
    assert [response.status_code for response in responses] == [404] * len(responses)
    assert Template.objects.get().version == 1


def test_a_lead_creates_a_template_that_starts_from_an_example_spec(client, workspace, lead):
    client.force_login(lead)
    response = client.post(reverse("template-new", args=[workspace.pk]), {"name": "Quiz", "kind": "mcq"})

    template = Template.objects.get(name="Quiz")
    assert response["Location"] == edit_url(template)
    page = client.get(response["Location"]).content.decode()
    assert "Write one multiple-choice question about {topic} at {level} level." in page
    assert 'name="label_style"' in page
    assert "photosynthesis" in page
    again = client.post(reverse("template-new", args=[workspace.pk]), {"name": "Quiz", "kind": "guardrail"})
    assert again.status_code == 400
    assert "already has a template named" in again.content.decode()


def test_the_guardrail_form_saves_topics_seeds_and_the_refusal(client, template, lead):
    client.force_login(lead)
    data = form_of(
        template,
        refusal="Sorry, {topic} is not something I can help with.",
        **{"blocked-0-seeds": "What dose of ibuprofen should I take?\r\n\r\n  Can I mix these pills?  \r\n"},
        **{"allowed-0-label": "kitchen questions", "allowed-0-description": "recipes and techniques"},
    )

    response = client.post(edit_url(template), data)

    assert response.status_code == 302
    template.refresh_from_db()
    assert template.version == 2
    assert template.spec["refusal"] == "Sorry, {topic} is not something I can help with."
    assert template.spec["blocked"][0]["seeds"] == ["What dose of ibuprofen should I take?", "Can I mix these pills?"]
    assert template.spec["allowed"][0]["label"] == "kitchen questions"
    assert "Saved Kitchen guardrails (version 2)" in client.get(response["Location"]).content.decode()


def test_add_and_remove_a_topic_show_the_form_again_without_saving(client, template, lead):
    client.force_login(lead)
    added = client.post(edit_url(template), form_of(template, op="add-blocked", refusal="Typed, not saved: {topic}."))

    page = added.content.decode()
    assert added.status_code == 200
    assert 'name="blocked-2-name"' in page
    assert "Typed, not saved: {topic}." in page
    assert "Not saved yet" in page

    removed = client.post(edit_url(template), form_of(template, op="remove-blocked-0")).content.decode()
    assert 'value="medical-advice"' not in removed
    assert 'name="blocked-0-name" value="investment-advice"' in removed  # the rest close up
    assert 'name="blocked-1-name"' not in removed
    template.refresh_from_db()
    assert (template.version, len(template.spec["blocked"])) == (1, 2)


def test_a_new_topic_left_empty_is_dropped_on_save(client, template, lead):
    client.force_login(lead)
    data = form_of(template, **{"allowed-1-name": "", "allowed-1-label": "", "allowed-1-seeds": ""})
    assert client.post(edit_url(template), data).status_code == 302
    template.refresh_from_db()
    assert len(template.spec["allowed"]) == 1


def test_a_stale_save_keeps_what_was_typed_and_warns(client, template, lead, admin_member):
    client.force_login(lead)
    template_update(template=template, user=admin_member, expected_version=1, description="theirs")

    response = client.post(edit_url(template), form_of(template, refusal="Mine: no {topic}.", version=1))

    page = response.content.decode()
    assert response.status_code == 409
    assert "Not saved: ada saved version 2 after you loaded version 1" in page
    assert "Mine: no {topic}." in page
    assert 'name="version" value="2"' in page  # saving again, on purpose, replaces theirs
    template.refresh_from_db()
    assert (template.version, template.description, template.spec["refusal"]) == (2, "theirs", GUARDRAIL["refusal"])


def test_spec_problems_are_shown_next_to_their_fields_and_nothing_is_saved(client, template, lead):
    client.force_login(lead)
    data = form_of(
        template,
        refusal="Sorry about {topik}.",
        paraphrases="lots",
        **{"blocked-0-name": "Medical Advice", "allowed-0-seeds": "What dose of ibuprofen should I take?"},
    )

    response = client.post(edit_url(template), data)
    assert response.status_code == 400
    assert "paraphrases: must be a whole number" in response.content.decode()

    response = client.post(edit_url(template), {**data, "paraphrases": "0"})
    page = response.content.decode()
    assert response.status_code == 400
    assert "refusal: unknown placeholder {topik}" in page
    assert "blocked[0].name: use lower-case letters" in page
    assert "allowed[0].seeds[0]: repeats blocked[0].seeds[0]" in page
    assert "line 1: repeats blocked[0].seeds[0]" in page  # beside the seeds: which line of the textarea
    assert 'value="Medical Advice"' in page  # the user's input stays
    assert page.count('class="field-errors"') >= 3  # beside the refusal, the name and the seeds
    assert Template.objects.get().version == 1


def test_the_mcq_form_saves_every_format_choice(client, workspace, lead):
    template = template_create(
        workspace=workspace,
        user=lead,
        name="Quiz",
        kind="mcq",
        spec={"topics": ["photosynthesis"], "levels": ["beginner"]},
    )
    client.force_login(lead)
    data = {
        "version": 1,
        "name": "Quiz",
        "description": "",
        "system_prompt": "",
        "prompt_pattern": "Ask about {topic} for {level} students.",
        "topics": "prime numbers\r\nthe water cycle\r\n",
        "levels": "beginner\r\nexpert",
        "output": "json",
        "options": "5",
        "label_style": "(a)",
        "question_prefix": "Q: ",
        "answer_line": "Correct: {label}",
        "explanation_prefix": "Why: ",
        "json_keys-question": "q",
        "json_keys-options": "choices",
        "json_keys-answer": "answer",
        "json_keys-explanation": "why",
    }

    assert client.post(edit_url(template), data).status_code == 302

    spec = Template.objects.get(pk=template.pk).spec
    assert spec["topics"] == ["prime numbers", "the water cycle"]
    assert spec["levels"] == ["beginner", "expert"]
    assert (spec["output"], spec["options"], spec["label_style"]) == ("json", 5, "(a)")
    assert (spec["question_prefix"], spec["answer_line"], spec["explanation"]) == ("Q: ", "Correct: {label}", False)
    assert spec["json_keys"] == {"question": "q", "options": "choices", "answer": "answer", "explanation": "why"}
    page = client.get(edit_url(template)).content.decode()
    assert '<option value="(a)" selected>' in page
    assert 'value="json" checked' in page


def test_preview_is_a_partial_table_of_new_and_existing_pairs(client, template, dataset, lead):
    example_create(
        dataset=dataset,
        user=lead,
        system_prompt="You are Acme Kitchen's assistant.",
        prompt="Is this mole cancerous?",
        response="",
    )
    client.force_login(lead)

    response = client.post(
        reverse("template-preview", args=[template.pk]), {"dataset": dataset.pk}, HTTP_HX_REQUEST="true"
    )

    page = response.content.decode()
    assert response.status_code == 200
    assert "<html" not in page
    assert page.count("data-preview-row") == 5
    assert "I&#x27;m sorry, but I can&#x27;t help with medical advice. Please talk to a doctor or pharmacist." in page
    assert "4 new pairs" in page
    assert "already in the dataset" in page
    assert "left for an annotator" in page
    assert "blocked:medical-advice" in page
    drafted = client.post(
        reverse("template-preview", args=[template.pk]), {"dataset": dataset.pk, "generator": "local"}
    ).content.decode()
    assert "<html" in drafted  # without htmx: a page of its own
    assert "drafted by" in drafted
    assert Example.objects.count() == 1


def test_preview_edits_shows_the_unsaved_form_and_saves_nothing(client, template, dataset, lead):
    client.force_login(lead)
    edited = form_of(template, **{"blocked-0-seeds": "Is this mole cancerous?\r\nHow much melatonin can I take?"})
    url = reverse("template-preview", args=[template.pk])

    response = client.post(url, {**edited, "spec_form": "1", "dataset": dataset.pk}, HTTP_HX_REQUEST="true")

    page = response.content.decode()
    assert response.status_code == 200
    assert "How much melatonin can I take?" in page
    assert "ibuprofen" not in page
    assert "A preview of your unsaved edits" in page
    assert "5 new pairs" in page
    template.refresh_from_db()
    assert template.version == 1
    assert "How much melatonin can I take?" not in str(template.spec)
    assert Example.objects.count() == 0
    unchanged = client.post(url, {**form_of(template), "spec_form": "1", "dataset": dataset.pk}).content.decode()
    assert "unsaved edits" not in unchanged
    broken = client.post(url, {**edited, "refusal": "Sorry about {weather}.", "spec_form": "1", "dataset": dataset.pk})
    assert "Your edits have problems" in broken.content.decode()
    assert "{weather}" in broken.content.decode()


def test_preview_only_offers_datasets_of_the_templates_workspace(client, template, lead, other_workspace):
    elsewhere = DatasetFactory(workspace=other_workspace)
    client.force_login(lead)
    response = client.post(reverse("template-preview", args=[template.pk]), {"dataset": elsewhere.pk})
    assert response.status_code == 400
    assert "Select a valid choice" in response.content.decode()


def test_generate_without_a_model_creates_the_pairs_and_shows_them(client, template, dataset, lead):
    client.force_login(lead)

    response = client.post(reverse("template-generate", args=[template.pk]), {"dataset": dataset.pk, "generator": ""})

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("dataset", args=[dataset.pk]))
    page = client.get(response["Location"]).content.decode()
    assert "Generated 5 new pairs from Kitchen guardrails; skipped 0 the dataset already had." in page
    assert page.count('name="selected"') == 5
    statuses = sorted(Example.objects.filter(dataset=dataset).values_list("status", flat=True))
    assert statuses == [ExampleStatus.DRAFT] * 2 + [ExampleStatus.SUBMITTED] * 3
    again = client.post(reverse("template-generate", args=[template.pk]), {"dataset": dataset.pk})
    assert "Generated 0 new pairs" in client.get(again["Location"]).content.decode()


def test_generate_with_a_model_goes_to_the_job_page(client, template, dataset, lead):
    client.force_login(lead)

    response = client.post(
        reverse("template-generate", args=[template.pk]),
        {"dataset": dataset.pk, "generator": "local", "paraphrases": "1"},
    )

    job = Job.objects.get()
    assert (job.kind, job.params["generator"], job.params["paraphrases"]) == ("generate", "local", 1)
    assert response["Location"] == reverse("job", args=[job.pk])
    page = client.get(response["Location"]).content.decode()
    assert "Generating pairs from Kitchen guardrails" in page
    assert 'hx-trigger="every 1s"' in page
    Job.objects.filter(pk=job.pk).update(
        status="succeeded", progress=1.0, result={"created": 3, "skipped": 0, "drafted": 1, "paraphrased": 2}
    )
    fragment = client.get(response["Location"], HTTP_HX_REQUEST="true").content.decode()
    assert "Generated 3 new pairs" in fragment
    assert "a model drafted 1 response" in fragment
    assert "every 1s" not in fragment


def test_a_failed_generation_job_shows_its_error(client, template, dataset, lead):
    job = Job.objects.create(
        kind="generate", dataset=dataset, created_by=lead, params={"template": template.pk}, status="failed",
        error="the model server answered 500",
    )  # fmt: skip
    client.force_login(lead)
    page = client.get(reverse("job", args=[job.pk])).content.decode()
    assert "Nothing was generated." in page
    assert "the model server answered 500" in page


def test_leads_draft_responses_for_the_selected_pairs(client, dataset, lead):
    empty = example_create(dataset=dataset, user=lead, prompt="How do I poach an egg?", response="")
    answered = example_create(dataset=dataset, user=lead, prompt="Why rest dough?", response="Gluten relaxes.")
    client.force_login(lead)
    page = client.get(reverse("dataset", args=[dataset.pk])).content.decode()
    assert "Draft responses with a model" in page

    response = client.post(
        reverse("dataset-draft", args=[dataset.pk]),
        {"selected": [f"{empty.pk}:1", f"{answered.pk}:1"], "generator": "local"},
    )

    job = Job.objects.get()
    assert (job.kind, job.params["examples"]) == ("draft", [empty.pk])
    assert response["Location"] == reverse("job", args=[job.pk])
    assert "Drafting 1 response with" in client.get(response["Location"]).content.decode()


def test_drafting_nothing_suitable_says_why(client, dataset, lead, annotator):
    answered = example_create(dataset=dataset, user=lead, prompt="Why rest dough?", response="Gluten relaxes.")
    client.force_login(lead)
    response = client.post(reverse("dataset-draft", args=[dataset.pk]), {"selected": f"{answered.pk}:1"}, follow=True)
    assert "no draft without a response was chosen" in response.content.decode()
    response = client.post(reverse("dataset-draft", args=[dataset.pk]), {}, follow=True)
    assert "Select at least one pair first." in response.content.decode()
    client.force_login(annotator)
    assert "Draft responses with a model" not in client.get(reverse("dataset", args=[dataset.pk])).content.decode()
    assert not Job.objects.exists()


def test_hostile_topic_text_and_seeds_render_as_text(client, workspace, dataset, lead):
    spec = {
        **GUARDRAIL,
        "refusal": "I can't help with {topic}.",
        "blocked": [{"name": "x", "label": SCRIPT, "description": PAYLOAD, "redirect": PAYLOAD, "seeds": [PAYLOAD]}],
    }
    template = template_create(workspace=workspace, user=lead, name=f"T {SCRIPT}", kind="guardrail", spec=spec)
    client.force_login(lead)
    pages = {
        "list": client.get(reverse("templates")),
        "edit": client.get(edit_url(template)),
        "preview": client.post(reverse("template-preview", args=[template.pk]), {"dataset": dataset.pk}),
        "refused": client.post(edit_url(template), form_of(template, refusal=f"{PAYLOAD} {{topik}}")),
    }
    for where, response in pages.items():
        html = response.content.decode()
        assert_inert(html, where)
        assert "&lt;script&gt;window.__xss=1&lt;/script&gt;" in html, where


def test_template_pages_keep_to_the_content_security_policy(client, template, dataset, lead):
    client.force_login(lead)
    responses = [
        client.get(reverse("templates")),
        client.get(reverse("template-new", args=[template.workspace_id])),
        client.get(edit_url(template)),
        client.post(edit_url(template), form_of(template, op="add-allowed")),
        client.post(reverse("template-preview", args=[template.pk]), {"dataset": dataset.pk}),
    ]
    for response in responses:
        html = response.content.decode()
        for pattern, what in INLINE:
            found = pattern.search(html)
            assert found is None, f"{what} in {response.request['PATH_INFO']}: {found.group(0) if found else ''}"
