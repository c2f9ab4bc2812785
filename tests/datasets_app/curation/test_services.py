import pytest
from django.core.exceptions import ValidationError

from datasets_app.curation.services import (
    DuplicateExample,
    dataset_create,
    dataset_delete,
    dataset_update,
    example_create,
    example_restore,
    example_set_status,
    example_update,
    workspace_create,
)
from datasets_app.errors import Conflict, InUse, NotAllowed, StaleVersion
from datasets_app.models import Dataset, Example, ExampleRevision, ExampleStatus
from tests.factories import runs_on

pytestmark = pytest.mark.django_db


def make_pair(dataset, user, **overrides):
    fields = {"prompt": "How do I poach an egg?", "response": "Simmer water, swirl, add the egg for 3 minutes."}
    return example_create(dataset=dataset, user=user, **{**fields, **overrides})


def test_creator_of_a_workspace_becomes_its_admin(annotator):
    workspace = workspace_create(name="New team", user=annotator)
    assert workspace.memberships.get(user=annotator).role == "admin"


def test_annotator_cannot_create_a_dataset(workspace, annotator):
    with pytest.raises(NotAllowed):
        dataset_create(workspace=workspace, user=annotator, name="Mine")


def test_dataset_names_are_unique_within_a_workspace(workspace, lead):
    dataset_create(workspace=workspace, user=lead, name="Refusals")
    with pytest.raises(Conflict, match="this workspace already has a dataset named 'Refusals'"):
        dataset_create(workspace=workspace, user=lead, name="Refusals")


def test_renaming_a_dataset_to_a_name_the_workspace_has_is_a_conflict(workspace, lead):
    dataset_create(workspace=workspace, user=lead, name="Refusals")
    other = dataset_create(workspace=workspace, user=lead, name="Other")
    with pytest.raises(Conflict, match="already has a dataset named 'Refusals'"):
        dataset_update(dataset=other, user=lead, name="Refusals")
    assert Dataset.objects.get(pk=other.pk).name == "Other"


def test_a_dataset_that_a_run_was_trained_on_stays_and_the_refusal_says_why(dataset, lead):
    (run,) = runs_on(dataset, "succeeded")

    with pytest.raises(InUse) as refused:
        dataset_delete(dataset=dataset, user=lead)

    assert refused.value.messages == [
        "This dataset is used by 1 fine-tuning run, trained on its snapshots; it cannot be deleted while they exist."
    ]
    assert Dataset.objects.filter(pk=dataset.pk).exists()
    assert run.snapshot.dataset_id == dataset.pk


def test_creating_a_pair_records_a_first_revision(dataset, annotator):
    example = make_pair(dataset, annotator)
    revision = example.revisions.get()
    assert (revision.version, revision.action, revision.user) == (1, "create", annotator)
    assert revision.after["prompt"] == "How do I poach an egg?"


def test_each_edit_bumps_the_version_and_keeps_before_and_after(dataset, annotator, lead):
    example = make_pair(dataset, annotator)
    example = example_update(
        example=example, user=lead, expected_version=1, response="Use fresh eggs and simmering water."
    )
    assert example.version == 2
    revision = example.revisions.get(version=2)
    assert revision.user == lead
    assert revision.before == {"response": "Simmer water, swirl, add the egg for 3 minutes."}
    assert revision.after == {"response": "Use fresh eggs and simmering water."}


def test_stale_edit_is_refused_and_changes_nothing(dataset, annotator, lead):
    example = make_pair(dataset, annotator)
    example_update(example=example, user=lead, expected_version=1, response="newer")
    with pytest.raises(StaleVersion) as caught:
        example_update(example=example, user=annotator, expected_version=1, response="older")
    assert caught.value.current.version == 2
    assert Example.objects.get(pk=example.pk).response == "newer"


def test_an_edit_that_changes_nothing_keeps_the_version(dataset, annotator):
    example = make_pair(dataset, annotator)
    same = example_update(example=example, user=annotator, expected_version=1, prompt=example.prompt)
    assert same.version == 1
    assert example.revisions.count() == 1


def test_duplicate_content_is_detected_despite_case_and_spacing(dataset, annotator):
    original = make_pair(dataset, annotator)
    with pytest.raises(DuplicateExample) as caught:
        make_pair(
            dataset,
            annotator,
            prompt="  how do I   POACH an egg? ",
            response="Simmer water, swirl,\nadd the egg for 3 minutes.",
        )
    assert caught.value.existing == original
    assert dataset.examples.count() == 1


def test_same_pair_with_another_system_prompt_is_not_a_duplicate(dataset, annotator):
    make_pair(dataset, annotator)
    make_pair(dataset, annotator, system_prompt="You are terse.")
    assert dataset.examples.count() == 2


def test_blank_prompt_cannot_be_submitted(dataset, annotator):
    example = make_pair(dataset, annotator, response="   ")
    with pytest.raises(ValidationError) as caught:
        example_set_status(example=example, user=annotator, action="submit")
    assert "response" in caught.value.message_dict
    assert Example.objects.get(pk=example.pk).status == ExampleStatus.DRAFT


def test_a_draft_may_be_incomplete(dataset, annotator):
    example = make_pair(dataset, annotator, response="")
    assert example.status == ExampleStatus.DRAFT


def test_unknown_history_role_is_refused(dataset, annotator):
    with pytest.raises(ValidationError, match="history\\[0\\].role is 'bot'"):
        make_pair(dataset, annotator, history=[{"role": "bot", "content": "hi"}])


def test_history_with_known_roles_is_kept(dataset, annotator):
    turns = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello! What are we cooking?"}]
    assert make_pair(dataset, annotator, history=turns).history == turns


def test_annotator_can_submit_but_not_approve(dataset, annotator):
    example = example_set_status(example=make_pair(dataset, annotator), user=annotator, action="submit")
    assert example.status == ExampleStatus.SUBMITTED
    with pytest.raises(NotAllowed):
        example_set_status(example=example, user=annotator, action="approve")
    assert Example.objects.get(pk=example.pk).status == ExampleStatus.SUBMITTED


def test_rejection_needs_a_comment_and_keeps_it(dataset, annotator, lead):
    example = example_set_status(example=make_pair(dataset, annotator), user=annotator, action="submit")
    with pytest.raises(ValidationError, match="comment"):
        example_set_status(example=example, user=lead, action="reject", comment=" ")
    example = example_set_status(example=example, user=lead, action="reject", comment="Too vague")
    assert (example.status, example.review_comment, example.version) == ("rejected", "Too vague", 3)
    assert example.revisions.get(version=3).comment == "Too vague"


def test_annotator_edit_of_approved_pair_sends_it_back_to_review(dataset, annotator, lead):
    example = example_set_status(example=make_pair(dataset, annotator), user=annotator, action="submit")
    example = example_set_status(example=example, user=lead, action="approve")
    example = example_update(
        example=example, user=annotator, expected_version=example.version, response="Changed later."
    )
    assert example.status == ExampleStatus.SUBMITTED


def test_outsider_cannot_edit(dataset, annotator, outsider):
    example = make_pair(dataset, annotator)
    with pytest.raises(NotAllowed):
        example_update(example=example, user=outsider, expected_version=1, response="hijacked")
    assert Example.objects.get(pk=example.pk).response.startswith("Simmer")


def test_restoring_an_old_version_is_a_new_revision(dataset, annotator):
    example = make_pair(dataset, annotator)
    example = example_update(example=example, user=annotator, expected_version=1, response="Second text.")
    example = example_update(example=example, user=annotator, expected_version=2, prompt="Changed prompt?")
    first = example.revisions.get(version=1)
    restored = example_restore(revision=first, user=annotator, expected_version=3)
    assert (restored.prompt, restored.response, restored.version) == (
        "How do I poach an egg?",
        "Simmer water, swirl, add the egg for 3 minutes.",
        4,
    )
    assert ExampleRevision.objects.get(example=example, version=4).action == "restore"
