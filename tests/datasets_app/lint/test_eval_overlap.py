"""eval_overlap: a training pair whose prompt is the same as, or a near duplicate of, an evaluation pair's prompt."""

import pytest

from datasets_app.curation.services import example_create, example_update
from datasets_app.lint.overlap import EvalOverlap
from datasets_app.lint.report import NEAR_THRESHOLD, dataset_lint_refresh, eval_overlaps
from datasets_app.models import Example
from tests.api_client import client_for

pytestmark = pytest.mark.django_db

STARTER = (
    "Please explain in plain words how a sourdough starter is fed, how often it should be fed, which flour works "
    "best for it, and how to tell that it is ready to bake a loaf with {day}"
)


def problems(example, code="eval_overlap"):
    return [item for item in Example.objects.get(pk=example.pk).problems if item["code"] == code]


def test_the_same_prompt_in_other_case_and_spacing_is_an_overlap():
    finder = EvalOverlap([(1, "What is a roux?")], threshold=NEAR_THRESHOLD)
    finder.add(2, "  what IS a   roux?")
    finder.add(3, "What is a béchamel?")
    (found,) = finder.overlaps()
    assert (found.pk, found.eval_pk, found.similarity) == (2, 1, 1.0)
    assert found.message == "the same prompt as evaluation pair #1"


def test_a_near_duplicate_prompt_is_an_overlap_and_a_different_one_is_not():
    finder = EvalOverlap([(1, STARTER.format(day="today"))], threshold=NEAR_THRESHOLD)
    finder.add(2, STARTER.format(day="tomorrow"))
    finder.add(3, "How do I keep a sourdough starter alive while I am away on holiday?")
    (found,) = finder.overlaps()
    assert (found.pk, found.eval_pk) == (2, 1)
    assert NEAR_THRESHOLD <= found.similarity < 1
    assert "% similar to that of evaluation pair #1" in found.message


def test_a_training_prompt_is_compared_with_every_evaluation_prompt_in_its_buckets():
    # many evaluation prompts that all look alike crowd the buckets; a training prompt like them is still found
    evaluation = [(n, STARTER.format(day=f"on day {n}")) for n in range(1, 41)]
    finder = EvalOverlap(evaluation, threshold=NEAR_THRESHOLD)
    finder.add(100, STARTER.format(day="on day 40").replace("Please explain", "Kindly explain"))
    (found,) = finder.overlaps()
    assert found.pk == 100
    assert found.eval_pk in dict(evaluation)
    assert NEAR_THRESHOLD <= found.similarity < 1


def test_without_an_evaluation_set_nothing_is_compared():
    finder = EvalOverlap([], threshold=NEAR_THRESHOLD)
    finder.add(1, "Anything?")
    assert not finder
    assert finder.overlaps() == []


def test_a_check_flags_training_pairs_that_repeat_evaluation_prompts(dataset, annotator):
    held_out = example_create(
        dataset=dataset, user=annotator, prompt="What is a roux?", response="Flour and fat.", split="eval"
    )
    near_held_out = example_create(
        dataset=dataset, user=annotator, prompt=STARTER.format(day="today"), response="Feed it daily.", split="eval"
    )
    exact = example_create(dataset=dataset, user=annotator, prompt="what is a ROUX?", response="Butter and flour.")
    near = example_create(dataset=dataset, user=annotator, prompt=STARTER.format(day="tomorrow"), response="Daily.")
    clean = example_create(dataset=dataset, user=annotator, prompt="How hot is a pizza oven?", response="Very.")

    report = dataset_lint_refresh(dataset=dataset, user=annotator)

    assert report.counts["eval_overlap"] == 2
    assert [(item["field"], item["related"]) for item in problems(exact)] == [("prompt", held_out.pk)]
    assert [item["related"] for item in problems(near)] == [near_held_out.pk]
    assert problems(clean) == problems(held_out) == problems(near_held_out) == []  # evaluation pairs are not flagged
    # across the sets it is an overlap, not also a duplicate or a near duplicate
    assert problems(exact, "duplicate") == problems(near, "near_duplicate") == []
    body = client_for(annotator).get(f"/api/datasets/{dataset.pk}/lint/").json()
    assert body["counts"]["eval_overlap"] == 2
    assert {item["example"] for item in body["problems"] if item["code"] == "eval_overlap"} == {exact.pk, near.pk}


def test_duplicates_are_still_found_within_each_set(dataset, annotator):
    pairs = [
        example_create(dataset=dataset, user=annotator, prompt="Same?", response=f"A{n}.", split=split)
        for n, split in enumerate(["train", "train", "eval", "eval"])
    ]
    dataset_lint_refresh(dataset=dataset, user=annotator)
    assert [item["related"] for item in problems(pairs[1], "duplicate")] == [pairs[0].pk]
    assert [item["related"] for item in problems(pairs[3], "duplicate")] == [pairs[2].pk]
    assert len(problems(pairs[0])) == len(problems(pairs[1])) == 1  # and both training copies overlap


def test_moving_a_pair_drops_its_findings_until_the_next_check(dataset, annotator):
    example_create(dataset=dataset, user=annotator, prompt="What is a roux?", response="Flour and fat.", split="eval")
    copy = example_create(dataset=dataset, user=annotator, prompt="What is a roux?", response="Butter and flour.")
    dataset_lint_refresh(dataset=dataset, user=annotator)
    assert problems(copy)
    example_update(example=copy, user=annotator, expected_version=1, split="eval")
    assert problems(copy) == []
    dataset_lint_refresh(dataset=dataset, user=annotator)
    assert problems(copy) == []
    assert problems(copy, "duplicate")  # now a duplicate within the evaluation set


def test_eval_overlaps_counts_only_the_pairs_asked_about(dataset, annotator):
    example_create(dataset=dataset, user=annotator, prompt="What is a roux?", response="Flour and fat.", split="eval")
    copy = example_create(dataset=dataset, user=annotator, prompt="What is a roux?", response="Butter.")
    assert [found.pk for found in eval_overlaps(examples=dataset.examples.all())] == [copy.pk]
    assert eval_overlaps(examples=dataset.examples.filter(split="train")) == []
