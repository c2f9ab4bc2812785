"""Preference pairs go through the same write path as any pair: checked, versioned, reviewed, restorable."""

import pytest
from django.core.exceptions import ValidationError

from datasets_app.curation.queues import examples_bulk_action
from datasets_app.curation.services import (
    DuplicateExample,
    dataset_create,
    dataset_update,
    example_create,
    example_restore,
    example_set_status,
    example_update,
    examples_bulk_create,
)
from datasets_app.errors import BulkInvalid, Conflict, StaleVersion
from datasets_app.models import Example, ExampleStatus

pytestmark = pytest.mark.django_db

PAIR = {"prompt": "Can I eat raw cookie dough?", "response": "Better not: bake it first.", "rejected": "Sure, eat up!"}


@pytest.fixture
def preferences(workspace, lead):
    return dataset_create(workspace=workspace, user=lead, name="Preferences", kind="preference")


def test_a_preference_pair_keeps_both_answers_and_records_them_in_its_first_revision(preferences, annotator):
    pair = example_create(dataset=preferences, user=annotator, **PAIR)
    stored = Example.objects.get(pk=pair.pk)
    assert (stored.response, stored.rejected) == (PAIR["response"], PAIR["rejected"])
    assert pair.revisions.get().after["rejected"] == PAIR["rejected"]


def test_the_same_prompt_and_chosen_answer_with_another_rejected_one_is_not_a_duplicate(preferences, annotator):
    example_create(dataset=preferences, user=annotator, **PAIR)
    example_create(dataset=preferences, user=annotator, **{**PAIR, "rejected": "Only a little."})
    with pytest.raises(DuplicateExample):
        example_create(dataset=preferences, user=annotator, **{**PAIR, "rejected": "  SURE, eat up! "})


def test_submitting_or_approving_needs_a_rejected_answer(preferences, annotator, lead):
    draft = example_create(dataset=preferences, user=annotator, **{**PAIR, "rejected": ""})  # a draft may lack it
    with pytest.raises(Conflict, match="may not be blank once submitted"):
        example_set_status(example=draft, user=annotator, action="submit")
    with pytest.raises(Conflict) as refused:
        example_set_status(example=draft, user=lead, action="approve")
    assert refused.value.message_dict == {"rejected": ["may not be blank once submitted."]}
    assert Example.objects.get(pk=draft.pk).status == ExampleStatus.DRAFT
    filled = example_update(example=draft, user=annotator, expected_version=1, rejected="Sure, eat up!")
    approved = example_set_status(example=filled, user=lead, action="approve")
    assert approved.status == ExampleStatus.APPROVED


def test_a_submitted_preference_pair_cannot_lose_its_rejected_answer(preferences, annotator):
    pair = example_create(dataset=preferences, user=annotator, status="submitted", **PAIR)
    with pytest.raises(Conflict):
        example_update(example=pair, user=annotator, expected_version=1, rejected="   ")
    with pytest.raises(ValidationError, match="may not be blank"):
        example_create(dataset=preferences, user=annotator, status="submitted", **{**PAIR, "rejected": ""})


def test_a_pair_of_any_other_kind_may_not_have_a_rejected_answer(dataset, annotator):
    with pytest.raises(ValidationError) as refused:
        example_create(dataset=dataset, user=annotator, **PAIR)
    assert list(refused.value.message_dict) == ["rejected"]
    pair = example_create(dataset=dataset, user=annotator, prompt=PAIR["prompt"], response=PAIR["response"])
    with pytest.raises(ValidationError) as refused:
        example_update(example=pair, user=annotator, expected_version=1, rejected="No.")
    assert not isinstance(refused.value, Conflict)
    assert Example.objects.get(pk=pair.pk).rejected == ""
    with pytest.raises(BulkInvalid) as bulk:
        examples_bulk_create(dataset=dataset, user=annotator, items=[PAIR])
    assert list(bulk.value.problems[0]) == ["rejected"]


def test_editing_the_rejected_answer_is_versioned_and_a_stale_edit_is_refused(preferences, annotator, lead):
    pair = example_create(dataset=preferences, user=annotator, **PAIR)
    edited = example_update(example=pair, user=lead, expected_version=1, rejected="Yes, all of it.")
    assert edited.version == 2
    revision = edited.revisions.last()
    assert (revision.before, revision.after) == ({"rejected": "Sure, eat up!"}, {"rejected": "Yes, all of it."})
    with pytest.raises(StaleVersion):
        example_update(example=pair, user=annotator, expected_version=1, rejected="Older copy.")
    assert Example.objects.get(pk=pair.pk).rejected == "Yes, all of it."


def test_swapping_the_answers_is_an_edit_that_a_restore_undoes(preferences, annotator):
    pair = example_create(dataset=preferences, user=annotator, **PAIR)
    swapped = example_update(
        example=pair, user=annotator, expected_version=1, response=pair.rejected, rejected=pair.response
    )
    assert (swapped.response, swapped.rejected, swapped.version) == (PAIR["rejected"], PAIR["response"], 2)
    restored = example_restore(revision=pair.revisions.get(version=1), user=annotator, expected_version=2)
    assert (restored.response, restored.rejected, restored.version) == (PAIR["response"], PAIR["rejected"], 3)


def test_a_dataset_with_pairs_cannot_switch_to_or_from_preference_pairs(preferences, dataset, annotator, lead):
    example_create(dataset=preferences, user=annotator, **PAIR)
    example_create(dataset=dataset, user=annotator, prompt="Hi?", response="Hello.")
    with pytest.raises(Conflict, match="cannot become or stop being a preference dataset"):
        dataset_update(dataset=preferences, user=lead, kind="general")
    with pytest.raises(Conflict):
        dataset_update(dataset=dataset, user=lead, kind="preference")
    empty = dataset_create(workspace=dataset.workspace, user=lead, name="Empty")
    assert dataset_update(dataset=empty, user=lead, kind="preference").is_preference
    assert dataset_update(dataset=dataset, user=lead, kind="mcq").kind == "mcq"  # other kinds change freely


def test_bulk_submit_skips_pairs_without_a_rejected_answer_naming_the_field(preferences, annotator):
    ready = example_create(dataset=preferences, user=annotator, **PAIR)
    missing = example_create(dataset=preferences, user=annotator, **{**PAIR, "rejected": ""})
    outcome = examples_bulk_action(
        dataset=preferences, user=annotator, versions={ready.pk: 1, missing.pk: 1}, action="submit"
    )
    assert outcome.changed == [ready.pk]
    assert outcome.skipped == [(missing.pk, "rejected: may not be blank once submitted.")]
