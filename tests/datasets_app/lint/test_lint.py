"""Lint: each pair's problems are stored when it is written; a whole-dataset check adds duplicates and near
duplicates; a dataset that requires valid pairs refuses to approve one that fails its template."""

import io
import json

import pytest
from django.core.exceptions import ValidationError

from datasets_app.blueprints.specs import MCQSpec, default_spec
from datasets_app.curation.queues import examples_bulk_action
from datasets_app.curation.services import example_create, example_set_status, example_update, examples_bulk_create
from datasets_app.imports.services import dataset_import
from datasets_app.lint.checks import example_problems
from datasets_app.lint.report import dataset_lint_refresh, dataset_lint_report, dataset_lint_stored
from datasets_app.models import Example, ExampleStatus, Template

pytestmark = pytest.mark.django_db

VALID = MCQSpec().render("Which gas do plants take in?", ["Oxygen", "Carbon dioxide", "Nitrogen", "Argon"], 1, "CO2.")
BROKEN = VALID.replace("Answer: B", "Answer: E")
REFUSAL = "I'm sorry, but I can't help with medical advice. Please talk to a doctor or pharmacist."
KNEAD = (
    "How long should I knead bread dough by hand before letting it rise?",
    "Knead it for about ten minutes, until the dough is smooth and springs back when you press it.",
)


def codes(example):
    return [problem["code"] for problem in Example.objects.get(pk=example.pk).problems]


def set_template(dataset, kind, *, require_valid=False):
    dataset.template = Template.objects.create(
        workspace=dataset.workspace, name=kind, kind=kind, spec=default_spec(kind)
    )
    dataset.require_valid = require_valid
    dataset.save()
    return dataset


@pytest.fixture
def mcq_dataset(dataset):
    return set_template(dataset, "mcq", require_valid=True)


def test_a_draft_without_a_response_is_a_notice_and_a_blank_prompt_a_problem(dataset, annotator):
    draft = example_create(dataset=dataset, user=annotator, prompt="What is a roux?", response="")
    assert codes(draft) == ["missing_response"]
    assert Example.objects.get(pk=draft.pk).problem_count == 1
    blank = example_create(dataset=dataset, user=annotator, prompt="  ", response="An answer.")
    assert Example.objects.get(pk=blank.pk).problems == [
        {"code": "blank", "field": "prompt", "line": None, "message": "the prompt is empty", "related": None}
    ]


def test_a_leftover_placeholder_is_found_with_its_line(dataset, annotator):
    example = example_create(
        dataset=dataset, user=annotator, prompt="Tell me about {topic}.", response="Sure.\nIt is {level} stuff."
    )
    problems = Example.objects.get(pk=example.pk).problems
    assert [(p["field"], p["line"], p["message"]) for p in problems] == [
        ("prompt", 1, "leftover placeholder {topic}"),
        ("response", 2, "leftover placeholder {level}"),
    ]


def test_code_braces_are_not_placeholders(dataset, annotator):
    example = example_create(dataset=dataset, user=annotator, prompt="Format it?", response="Use f'{name}' or {}.")
    assert codes(example) == []


def test_a_pair_over_the_base_models_context_is_too_long(dataset, annotator, settings, tmp_path):
    settings.MODEL_CACHE_DIR = tmp_path  # no tokenizer cached here: the length is estimated
    settings.BASE_MODELS = {**settings.BASE_MODELS, "smollm2-135m-instruct": {"context": 100}}
    short = example_create(dataset=dataset, user=annotator, prompt="Hi?", response="Hello.")
    long = example_create(dataset=dataset, user=annotator, prompt="Why? " * 50, response="Because. " * 50)
    assert codes(short) == []
    (problem,) = Example.objects.get(pk=long.pk).problems
    assert problem["code"] == "too_long"
    assert problem["message"] == (
        "about 175 tokens with the system prompt and earlier turns; the base model's context is 100"
    )


def test_too_long_counts_real_tokens_when_the_tokenizer_is_cached(dataset, annotator, settings):
    from datasets_app.lint.tokens import tokenizer_path
    from training_app.execution import base_model_dir

    base_model_dir(settings.DEFAULT_BASE_MODEL)  # builds the model cache once when this machine has none
    assert tokenizer_path().is_file()
    settings.BASE_MODELS = {**settings.BASE_MODELS, "smollm2-135m-instruct": {"context": 100}}
    long = example_create(dataset=dataset, user=annotator, prompt="Why? " * 50, response="Because. " * 50)
    (problem,) = Example.objects.get(pk=long.pk).problems
    # counted with the real tokenizer (no "about"), and only until the count passed the context
    assert problem["message"].startswith("at least 1")
    assert "context is 100" in problem["message"]


def test_a_long_text_is_tokenized_only_as_far_as_the_context_needs(settings):
    from datasets_app.lint.tokens import count_tokens, count_tokens_upto
    from training_app.execution import base_model_dir

    base_model_dir(settings.DEFAULT_BASE_MODEL)
    text = "The quick brown fox jumps over the lazy dog. " * 20_000  # 900,000 characters

    counted, whole = count_tokens_upto([text], limit=8192)

    assert not whole
    assert 8192 < counted < count_tokens([text])[0] / 10  # the count stopped soon after passing the context
    short = "A short answer."
    assert count_tokens_upto(["Hi?", short], limit=8192) == (sum(count_tokens(["Hi?", short])), True)


def test_mcq_format_problems_are_stored_on_save_and_cleared_by_a_fix(mcq_dataset, annotator):
    example = example_create(dataset=mcq_dataset, user=annotator, prompt="Write about gases.", response=BROKEN)
    (problem,) = Example.objects.get(pk=example.pk).problems
    assert problem == {
        "code": "format", "field": "response", "line": 6,
        "message": "the answer E is not among the options A–D", "related": None,
    }  # fmt: skip
    example_update(example=example, user=annotator, expected_version=1, response=VALID)
    assert codes(example) == []


def test_guardrail_pairs_are_checked_against_the_template(dataset, annotator):
    set_template(dataset, "guardrail")
    answered = example_create(
        dataset=dataset, user=annotator, prompt="Dose?", response="Take two.", tags=["blocked:medical-advice"]
    )
    refused = example_create(
        dataset=dataset, user=annotator, prompt="Eggs?", response=REFUSAL, tags=["allowed:cooking"]
    )
    unknown = example_create(
        dataset=dataset, user=annotator, prompt="Taxes?", response="File early.", tags=["allowed:taxes"]
    )
    fine = example_create(
        dataset=dataset, user=annotator, prompt="Ibuprofen?", response=REFUSAL, tags=["blocked:medical-advice"]
    )
    assert [codes(e) for e in (answered, refused, unknown, fine)] == [["guardrail"], ["guardrail"], ["guardrail"], []]


def test_pairs_created_in_bulk_and_imported_get_their_problems(dataset, annotator):
    created, _ = examples_bulk_create(
        dataset=dataset, user=annotator, items=[{"prompt": "About {topic}?", "response": "Yes."}]
    )
    assert codes(created[0]) == ["placeholder"]
    lines = [{"prompt": "Explain {level} maths.", "response": "Sure."}, {"prompt": "Fine?", "response": "Yes."}]
    stream = io.BytesIO("\n".join(json.dumps(line) for line in lines).encode())
    dataset_import(dataset=dataset, user=annotator, stream=stream, filename="pairs.jsonl")
    imported = dataset.examples.filter(source="import:pairs.jsonl").order_by("id")
    assert [(e.problem_count, [p["message"] for p in e.problems]) for e in imported] == [
        (1, ["leftover placeholder {level}"]),
        (0, []),
    ]


def test_the_report_finds_the_same_prompt_asked_twice(dataset, annotator):
    first = example_create(dataset=dataset, user=annotator, prompt="How do I zest a lemon?", response="A grater.")
    second = example_create(dataset=dataset, user=annotator, prompt="how do  I ZEST a lemon?", response="A knife.")
    example_create(dataset=dataset, user=annotator, prompt="How do I juice a lemon?", response="Squeeze it.")
    report = dataset_lint_report(dataset=dataset)
    duplicates = [(p["example"], p["related"], p["message"]) for p in report.problems if p["code"] == "duplicate"]
    assert duplicates == [
        (first.pk, second.pk, f"pair #{second.pk} has the same prompt"),
        (second.pk, first.pk, f"the same prompt as pair #{first.pk}, but a different response"),
    ]
    assert report.counts["duplicate"] == 2


def test_the_report_lists_near_duplicates_side_by_side_and_not_unrelated_pairs(dataset, annotator):
    original = example_create(dataset=dataset, user=annotator, prompt=KNEAD[0], response=KNEAD[1])
    near = example_create(
        dataset=dataset, user=annotator, prompt=KNEAD[0].replace("should I", "do I"), response=KNEAD[1]
    )
    example_create(dataset=dataset, user=annotator, prompt="Why did my bread not rise?", response=KNEAD[1][:40])
    for n in range(30):
        example_create(dataset=dataset, user=annotator, prompt=f"What goes with dish {n}?", response=f"Salad {n}.")
    report = dataset_lint_report(dataset=dataset)
    (pair,) = report.near_duplicates
    assert (pair["a"], pair["b"]) == (original.pk, near.pk)
    assert 0.8 <= pair["similarity"] < 1
    flagged = {(p["example"], p["related"]) for p in report.problems if p["code"] == "near_duplicate"}
    assert flagged == {(original.pk, near.pk), (near.pk, original.pk)}
    assert any(f"% similar to pair #{near.pk}" in p["message"] for p in report.problems)


def test_a_lower_threshold_finds_looser_copies(dataset, annotator):
    example_create(dataset=dataset, user=annotator, prompt=KNEAD[0], response=KNEAD[1])
    example_create(dataset=dataset, user=annotator, prompt="Kneading bread dough by hand: how long?", response=KNEAD[1])
    assert dataset_lint_report(dataset=dataset).near_duplicates == []
    assert len(dataset_lint_report(dataset=dataset, threshold=0.5).near_duplicates) == 1


def test_refreshing_stores_findings_without_a_new_version(dataset, annotator):
    first = example_create(dataset=dataset, user=annotator, prompt=KNEAD[0], response=KNEAD[1])
    second = example_create(dataset=dataset, user=annotator, prompt=KNEAD[0] + " Thanks!", response=KNEAD[1])
    untouched = example_create(dataset=dataset, user=annotator, prompt="Salt?", response="A pinch.")
    before = Example.objects.get(pk=second.pk)

    report = dataset_lint_refresh(dataset=dataset, user=annotator)

    after = Example.objects.get(pk=second.pk)
    assert report.counts["near_duplicate"] == 2
    assert codes(first) == codes(second) == ["near_duplicate"]
    assert after.problem_count == 1
    assert (after.version, after.updated_at) == (before.version, before.updated_at)
    assert codes(untouched) == []


def test_a_status_change_keeps_stored_duplicate_findings(dataset, annotator, lead):
    example_create(dataset=dataset, user=annotator, prompt="Salt?", response="A pinch.")
    copy = example_create(dataset=dataset, user=annotator, prompt="salt?", response="A pinch.", allow_duplicate=True)
    dataset_lint_refresh(dataset=dataset, user=annotator)
    example_set_status(example=copy, user=annotator, action="submit")
    assert codes(copy) == ["duplicate"]
    example_update(example=copy, user=annotator, expected_version=2, prompt="Pepper?")
    assert codes(copy) == []  # the text changed: the next check decides again


def test_example_problems_makes_no_queries(dataset, annotator, django_assert_num_queries):
    example = example_create(dataset=dataset, user=annotator, prompt="{topic}?", response="")
    loaded = Example.objects.select_related("dataset__workspace").get(pk=example.pk)
    with django_assert_num_queries(0):
        found = example_problems(loaded, template=None)
    assert [p["code"] for p in found] == ["missing_response", "placeholder"]


def test_approving_a_pair_that_fails_the_template_is_refused(mcq_dataset, annotator, lead):
    example = example_create(
        dataset=mcq_dataset, user=annotator, prompt="Gases?", response=BROKEN, status=ExampleStatus.SUBMITTED
    )
    with pytest.raises(ValidationError) as refused:
        example_set_status(example=example, user=lead, action="approve")
    assert refused.value.messages == ["can't approve: line 6: the answer E is not among the options A–D"]
    assert Example.objects.get(pk=example.pk).status == ExampleStatus.SUBMITTED


def test_approving_is_allowed_when_valid_pairs_are_not_required(mcq_dataset, annotator, lead):
    mcq_dataset.require_valid = False
    mcq_dataset.save()
    example = example_create(dataset=mcq_dataset, user=annotator, prompt="Gases?", response=BROKEN, status="submitted")
    example_set_status(example=example, user=lead, action="approve")
    assert Example.objects.get(pk=example.pk).status == ExampleStatus.APPROVED


def test_bulk_approve_skips_invalid_pairs_with_the_reason(mcq_dataset, annotator, lead):
    good = example_create(dataset=mcq_dataset, user=annotator, prompt="Gas?", response=VALID, status="submitted")
    bad = example_create(dataset=mcq_dataset, user=annotator, prompt="Gases?", response=BROKEN, status="submitted")
    outcome = examples_bulk_action(dataset=mcq_dataset, user=lead, versions={good.pk: 1, bad.pk: 1}, action="approve")
    assert outcome.changed == [good.pk]
    assert outcome.skipped == [(bad.pk, "can't approve: line 6: the answer E is not among the options A–D")]


def test_the_stored_report_reads_back_what_the_last_check_found(dataset, annotator):
    original = example_create(dataset=dataset, user=annotator, prompt=KNEAD[0], response=KNEAD[1])
    near = example_create(
        dataset=dataset, user=annotator, prompt=KNEAD[0].replace("should I", "do I"), response=KNEAD[1]
    )
    example_create(dataset=dataset, user=annotator, prompt="Leftover {topic}?", response="Yes.")
    checked = dataset_lint_refresh(dataset=dataset, user=annotator)

    stored = dataset_lint_stored(dataset=dataset)

    assert stored.checked == 3
    assert stored.counts == checked.counts
    assert stored.problems == checked.problems
    (pair,) = stored.near_duplicates
    assert (pair["a"], pair["b"]) == (original.pk, near.pk)
    assert pair["similarity"] == pytest.approx(checked.near_duplicates[0]["similarity"], abs=0.01)
