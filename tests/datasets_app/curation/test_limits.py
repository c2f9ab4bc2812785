"""Text caps (PAIR_TEXT_MAX_CHARS and the others in limits.py), enforced by the services themselves:
a write over a cap is refused naming the field, and nothing is written."""

import pytest
from django.core.exceptions import ValidationError

from datasets_app.blueprints.services import template_create, template_generate_now
from datasets_app.curation.limits import HISTORY_MAX_TURNS, import_read_limits, pair_text_errors
from datasets_app.curation.services import (
    dataset_create,
    dataset_update,
    example_create,
    example_restore,
    example_set_status,
    example_update,
    examples_bulk_create,
)
from datasets_app.errors import BulkInvalid
from datasets_app.models import Example
from tests.datasets_app.blueprints.test_services import GUARDRAIL

pytestmark = pytest.mark.django_db

CAP = 100_000  # the default PAIR_TEXT_MAX_CHARS


def test_the_default_caps_are_the_documented_ones(settings):
    assert (settings.PAIR_TEXT_MAX_CHARS, settings.PAIR_TOTAL_MAX_CHARS) == (100_000, 400_000)
    # a record in an import file may be a few MB, never hundreds
    assert 4 << 20 < import_read_limits().record_bytes < 8 << 20


def test_a_pair_at_the_cap_is_stored_and_one_character_more_is_refused_naming_the_field(dataset, annotator):
    fits = example_create(dataset=dataset, user=annotator, prompt="Long one?", response="a" * CAP)
    assert len(fits.response) == CAP

    with pytest.raises(ValidationError) as refused:
        example_create(dataset=dataset, user=annotator, prompt="Longer?", response="a" * (CAP + 1))

    assert refused.value.message_dict == {"response": [f"at most {CAP} characters (got {CAP + 1})"]}
    assert list(dataset.examples.values_list("prompt", flat=True)) == ["Long one?"]


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"prompt": "p" * 250_000}, "prompt"),
        ({"system_prompt": "s" * 250_000}, "system_prompt"),
        (
            {"history": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "h" * 250_000}]},
            "history[1]",
        ),
    ],
)
def test_every_text_of_a_pair_is_capped(dataset, annotator, fields, field):
    with pytest.raises(ValidationError) as refused:
        example_create(dataset=dataset, user=annotator, **{"prompt": "q", "response": "r", **fields})

    assert refused.value.message_dict == {field: [f"at most {CAP} characters (got 250000)"]}
    assert not dataset.examples.exists()


def test_history_is_capped_in_turns_and_a_pair_in_all_its_text(dataset, annotator, settings):
    many = [{"role": "user", "content": "hi"}] * (HISTORY_MAX_TURNS + 1)
    with pytest.raises(ValidationError, match=f"at most {HISTORY_MAX_TURNS} earlier turns"):
        example_create(dataset=dataset, user=annotator, prompt="q", response="r", history=many)

    settings.PAIR_TOTAL_MAX_CHARS = 250_000
    turns = [{"role": "user", "content": "u" * 90_000}, {"role": "assistant", "content": "a" * 90_000}]
    with pytest.raises(ValidationError) as refused:
        example_create(dataset=dataset, user=annotator, prompt="p" * 90_000, response="r", history=turns)
    assert refused.value.message_dict == {
        "history": ["the pair's text all together is at most 250000 characters (got 270001)"]
    }
    assert not dataset.examples.exists()


def test_an_edit_over_the_cap_changes_nothing(dataset, annotator):
    example = example_create(dataset=dataset, user=annotator, prompt="q?", response="short")

    with pytest.raises(ValidationError, match="response"):
        example_update(example=example, user=annotator, expected_version=1, response="x" * (CAP + 5))

    example.refresh_from_db()
    assert (example.response, example.version, example.revisions.count()) == ("short", 1, 1)


def test_restoring_a_version_longer_than_todays_cap_is_refused(dataset, annotator, settings):
    example = example_create(dataset=dataset, user=annotator, prompt="q?", response="r" * 500)
    example_update(example=example, user=annotator, expected_version=1, response="short")
    settings.PAIR_TEXT_MAX_CHARS = 100  # lowered since version 1 was written

    with pytest.raises(ValidationError, match=r"at most 100 characters \(got 500\)"):
        example_restore(revision=example.revisions.get(version=1), user=annotator, expected_version=2)

    assert Example.objects.get(pk=example.pk).response == "short"


def test_bulk_create_names_each_record_over_the_cap_and_creates_nothing(dataset, annotator):
    items = [
        {"prompt": "fine", "response": "ok"},
        {"prompt": "long", "response": "x" * (CAP + 1)},
        {"prompt": "tags", "response": "ok", "tags": ["t" * 201]},
    ]

    with pytest.raises(BulkInvalid) as refused:
        examples_bulk_create(dataset=dataset, user=annotator, items=items)

    assert refused.value.problems == {
        1: {"response": [f"at most {CAP} characters (got {CAP + 1})"]},
        2: {"tags[0]": ["at most 200 characters (got 201)"]},
    }
    assert not dataset.examples.exists()


def test_review_comments_guidelines_and_descriptions_are_capped(dataset, annotator, lead):
    example = example_create(dataset=dataset, user=annotator, prompt="q?", response="r", status="submitted")
    with pytest.raises(ValidationError, match=r"comment.*at most 5000 characters \(got 6000\)"):
        example_set_status(example=example, user=lead, action="reject", comment="c" * 6000)
    with pytest.raises(ValidationError, match=r"guidelines.*at most 50000 characters"):
        dataset_update(dataset=dataset, user=lead, guidelines="g" * 50_001)
    with pytest.raises(ValidationError, match=r"description.*at most 5000 characters"):
        dataset_create(workspace=dataset.workspace, user=lead, name="Other", description="d" * 5001)
    example.refresh_from_db()
    dataset.refresh_from_db()
    assert (example.status, dataset.guidelines) == ("submitted", "")


def test_a_template_whose_pairs_would_be_too_long_generates_nothing(workspace, dataset, lead, settings):
    template = template_create(workspace=workspace, user=lead, name="Kitchen", kind="guardrail", spec=GUARDRAIL)
    settings.PAIR_TEXT_MAX_CHARS = 20  # the refusals the template writes are longer

    with pytest.raises(ValidationError) as refused:
        template_generate_now(template=template, dataset=dataset, user=lead)

    first = refused.value.message_dict["spec"][0]
    assert first.startswith(
        "the pair for 'What dose of ibuprofen should I take?': system_prompt: at most 20 characters"
    )
    assert not dataset.examples.exists()


def test_checking_a_pair_looks_only_at_lengths():
    assert pair_text_errors(prompt="p", response="r", history=[{"role": "user", "content": "c"}], tags=["t"]) == {}
    assert pair_text_errors(prompt="p", response="r", tags=["t"] * 51) == {"tags": "at most 50 tags (got 51)"}
