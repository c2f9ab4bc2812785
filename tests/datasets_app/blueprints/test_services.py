"""Templates turn a few decisions into many consistent pairs, without duplicating what a dataset has."""

import pytest
from django.core.exceptions import ValidationError

from datasets_app.blueprints.services import template_create, template_generate, template_plan, template_update
from datasets_app.errors import NotAllowed, StaleVersion
from datasets_app.models import Dataset, Example, ExampleStatus
from tests.factories import DatasetFactory

pytestmark = pytest.mark.django_db

GUARDRAIL = {
    "system_prompt": "You are Acme Kitchen's assistant.",
    "refusal": "I'm sorry, but I can't help with {topic}. {redirect}",
    "blocked": [
        {
            "name": "medical-advice",
            "label": "medical advice",
            "redirect": "Please talk to a doctor or pharmacist.",
            "seeds": ["What dose of ibuprofen should I take?", "Is this mole cancerous?"],
        },
        {"name": "investment-advice", "seeds": ["Should I buy Tesla stock?"]},
    ],
    "allowed": [{"name": "cooking", "seeds": ["How long do I boil an egg?", "What can replace buttermilk?"]}],
    "paraphrases": 0,
}
MCQ = {
    "prompt_pattern": "Write one multiple-choice question about {topic} at {level} level.",
    "topics": ["photosynthesis", "the water cycle"],
    "levels": ["beginner", "advanced"],
    "options": 4,
    "label_style": "A)",
}


@pytest.fixture
def guardrail_template(workspace, lead):
    return template_create(workspace=workspace, user=lead, name="Kitchen guardrails", kind="guardrail", spec=GUARDRAIL)


def test_guardrail_template_generates_refusals_and_contrast_drafts(guardrail_template, dataset, lead):
    outcome = template_generate(template=guardrail_template, dataset=dataset, user=lead)

    assert (outcome.created, outcome.skipped) == (5, 0)
    examples = list(Example.objects.filter(dataset=dataset).order_by("id"))
    refusals = [e for e in examples if e.tags[0].startswith("blocked:")]
    assert [e.response for e in refusals] == [
        "I'm sorry, but I can't help with medical advice. Please talk to a doctor or pharmacist.",
        "I'm sorry, but I can't help with medical advice. Please talk to a doctor or pharmacist.",
        "I'm sorry, but I can't help with investment advice.",
    ]
    assert {e.status for e in refusals} == {ExampleStatus.SUBMITTED}
    assert refusals[2].tags == ["blocked:investment-advice"]
    assert refusals[0].system_prompt == "You are Acme Kitchen's assistant."
    contrast = [e for e in examples if e.tags == ["allowed:cooking"]]
    assert [(e.prompt, e.response, e.status) for e in contrast] == [
        ("How long do I boil an egg?", "", ExampleStatus.DRAFT),
        ("What can replace buttermilk?", "", ExampleStatus.DRAFT),
    ]
    assert {e.source for e in examples} == {"template:Kitchen guardrails"}
    assert Dataset.objects.get(pk=dataset.pk).template == guardrail_template


def test_generating_again_creates_nothing_new_even_after_edits(guardrail_template, dataset, lead, annotator):
    template_generate(template=guardrail_template, dataset=dataset, user=lead)
    # an annotator answers one contrast prompt, which changes its content hash
    from datasets_app.curation.services import example_update

    draft = Example.objects.get(dataset=dataset, prompt="How long do I boil an egg?")
    example_update(example=draft, user=annotator, expected_version=draft.version, response="About 7 minutes.")

    again = template_generate(template=guardrail_template, dataset=dataset, user=lead)

    assert (again.created, again.skipped) == (0, 5)
    assert Example.objects.filter(dataset=dataset).count() == 5


def test_preview_shows_what_would_be_generated_and_writes_nothing(guardrail_template, dataset, lead):
    Example.objects.create(
        dataset=dataset, system_prompt="You are Acme Kitchen's assistant.", prompt="  should I buy TESLA stock? "
    )

    plan = template_plan(template=guardrail_template, dataset=dataset)

    assert len(plan.pairs) == 5
    assert [pair.prompt for pair in plan.pairs if pair.exists] == ["Should I buy Tesla stock?"]
    assert [pair.prompt for pair in plan.pairs if pair.drafted] == [
        "How long do I boil an egg?",
        "What can replace buttermilk?",
    ]
    assert Example.objects.filter(dataset=dataset).count() == 1


def test_mcq_template_writes_one_prompt_per_topic_and_level(workspace, lead):
    template = template_create(workspace=workspace, user=lead, name="Biology MCQ", kind="mcq", spec=MCQ)
    target = DatasetFactory(workspace=workspace, name="MCQ", kind="mcq")

    outcome = template_generate(template=template, dataset=target, user=lead)

    assert outcome.created == 4
    examples = Example.objects.filter(dataset=target).order_by("id")
    assert [e.prompt for e in examples] == [
        "Write one multiple-choice question about photosynthesis at beginner level.",
        "Write one multiple-choice question about photosynthesis at advanced level.",
        "Write one multiple-choice question about the water cycle at beginner level.",
        "Write one multiple-choice question about the water cycle at advanced level.",
    ]
    assert examples[3].tags == ["topic:the water cycle", "level:advanced"]
    assert {(e.status, e.response) for e in examples} == {(ExampleStatus.DRAFT, "")}
    assert not any("{" in e.prompt for e in examples)


def test_many_pairs_are_generated_by_a_job(guardrail_template, dataset, lead, settings):
    settings.GENERATE_SYNC_MAX = 2

    job = template_generate(template=guardrail_template, dataset=dataset, user=lead)

    assert (job.kind, job.status) == ("generate", "queued")
    assert job.params == {"template": guardrail_template.pk, "generator": None, "paraphrases": 0}
    assert not Example.objects.filter(dataset=dataset).exists()


def test_a_broken_spec_is_refused_naming_the_field(workspace, lead):
    broken = {**GUARDRAIL, "blocked": [{"name": "medical-advice", "seeds": ["  "]}]}

    with pytest.raises(ValidationError) as caught:
        template_create(workspace=workspace, user=lead, name="Broken", kind="guardrail", spec=broken)

    assert "blocked[0].seeds[0]" in str(caught.value.message_dict["spec"])


def test_two_templates_cannot_share_a_name(guardrail_template, workspace, lead):
    with pytest.raises(ValidationError, match="already has a template named"):
        template_create(workspace=workspace, user=lead, name="Kitchen guardrails", kind="mcq", spec=MCQ)


def test_a_stale_template_edit_is_refused_and_the_newer_spec_survives(guardrail_template, lead):
    newer = {**GUARDRAIL, "refusal": "Sorry, I can't help with {topic}."}
    template_update(template=guardrail_template, user=lead, expected_version=1, spec=newer)

    with pytest.raises(StaleVersion):
        template_update(template=guardrail_template, user=lead, expected_version=1, spec=GUARDRAIL)

    guardrail_template.refresh_from_db()
    assert guardrail_template.spec["refusal"] == "Sorry, I can't help with {topic}."
    assert guardrail_template.version == 2


def test_annotators_cannot_create_edit_or_generate(guardrail_template, workspace, dataset, annotator):
    with pytest.raises(NotAllowed):
        template_create(workspace=workspace, user=annotator, name="Mine", kind="mcq", spec=MCQ)
    with pytest.raises(NotAllowed):
        template_update(template=guardrail_template, user=annotator, expected_version=1, name="Renamed")
    with pytest.raises(NotAllowed):
        template_generate(template=guardrail_template, dataset=dataset, user=annotator)
    assert not Example.objects.exists()


def test_a_template_cannot_fill_another_workspaces_dataset(guardrail_template, other_workspace, lead):
    foreign = DatasetFactory(workspace=other_workspace, name="Theirs")

    with pytest.raises(ValidationError, match="template's workspace"):
        template_generate(template=guardrail_template, dataset=foreign, user=lead)
