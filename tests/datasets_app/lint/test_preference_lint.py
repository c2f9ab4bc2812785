"""Lint of preference pairs: blank and identical sides, and the usual checks on each side."""

import pytest

from datasets_app.blueprints.specs import default_spec
from datasets_app.curation.services import dataset_create, example_create
from datasets_app.lint.report import dataset_lint_refresh, dataset_lint_report
from datasets_app.models import Example, Template

pytestmark = pytest.mark.django_db

REFUSAL = "I'm sorry, but I can't help with medical advice. Please talk to a doctor or pharmacist."


@pytest.fixture
def preferences(workspace, lead):
    return dataset_create(workspace=workspace, user=lead, name="Preferences", kind="preference")


def found(example):
    return [(p["code"], p["field"]) for p in Example.objects.get(pk=example.pk).problems]


def test_blank_sides_and_sides_that_say_the_same_are_flagged(preferences, annotator):
    blank = example_create(dataset=preferences, user=annotator, prompt="Dose?", response="", rejected="  ")
    same = example_create(
        dataset=preferences, user=annotator, prompt="Eggs?", response="Boil them.", rejected="  boil THEM. "
    )
    fine = example_create(dataset=preferences, user=annotator, prompt="Eggs?", response="Boil them.", rejected="No.")
    assert found(blank) == [("blank_side", "response"), ("blank_side", "rejected")]
    assert (
        Example.objects.get(pk=same.pk)
        .problems[0]["message"]
        .startswith("the chosen and the rejected answer are the same")
    )
    assert found(same) == [("same_sides", "rejected")]
    assert found(fine) == []


def test_placeholders_are_found_in_the_rejected_answer_too(preferences, annotator):
    pair = example_create(
        dataset=preferences, user=annotator, prompt="Hi?", response="Hello {name}.", rejected="Dear [Your Name], no."
    )
    assert found(pair) == [("placeholder", "response"), ("placeholder", "rejected")]


def test_each_side_is_checked_against_the_context_with_the_prompt(preferences, annotator, settings, tmp_path):
    settings.MODEL_CACHE_DIR = tmp_path  # no tokenizer here: lengths are estimated
    settings.BASE_MODELS = {**settings.BASE_MODELS, "smollm2-135m-instruct": {"context": 100}}
    pair = example_create(
        dataset=preferences, user=annotator, prompt="Why? " * 20, response="Because.", rejected="Because. " * 60
    )
    (problem,) = Example.objects.get(pk=pair.pk).problems
    assert (problem["code"], problem["field"]) == ("too_long", "rejected")
    assert problem["message"].startswith("the rejected answer: about ")


def test_the_templates_validator_checks_only_the_chosen_answer(preferences, annotator):
    preferences.template = Template.objects.create(
        workspace=preferences.workspace, name="guard", kind="guardrail", spec=default_spec("guardrail")
    )
    preferences.save()
    right = example_create(
        dataset=preferences, user=annotator, prompt="Dose?", response=REFUSAL, rejected="Take two.",
        tags=["blocked:medical-advice"],
    )  # fmt: skip
    wrong = example_create(
        dataset=preferences, user=annotator, prompt="Pills?", response="Take two.", rejected=REFUSAL,
        tags=["blocked:medical-advice"],
    )  # fmt: skip
    assert found(right) == []
    assert found(wrong) == [("guardrail", "response")]


def test_the_report_compares_both_answers_of_pairs_with_the_same_prompt(preferences, annotator):
    first = example_create(dataset=preferences, user=annotator, prompt="Zest?", response="A grater.", rejected="No.")
    second = example_create(dataset=preferences, user=annotator, prompt="zest?", response="A grater.", rejected="Hm.")
    third = example_create(
        dataset=preferences, user=annotator, prompt="ZEST?", response="a grater.", rejected="no.", allow_duplicate=True
    )
    report = dataset_lint_report(dataset=preferences)
    messages = {p["example"]: p["message"] for p in report.problems if p["code"] == "duplicate"}
    assert messages == {
        first.pk: f"pair #{second.pk} has the same prompt",
        second.pk: f"the same prompt as pair #{first.pk}, but a different response",
        third.pk: f"the same prompt as pair #{first.pk}, and the same response",
    }


def test_a_whole_dataset_check_stores_the_side_findings(preferences, annotator):
    pair = example_create(dataset=preferences, user=annotator, prompt="Eggs?", response="Boil.", rejected="boil.")
    Example.objects.filter(pk=pair.pk).update(problems=[], problem_count=0)  # as if linted before these checks
    report = dataset_lint_refresh(dataset=preferences, user=annotator)
    assert report.counts["same_sides"] == 1
    assert found(pair) == [("same_sides", "rejected")]
