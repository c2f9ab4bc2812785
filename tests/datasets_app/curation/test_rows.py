"""Every path that writes a pair stores the row the one row builder makes: hash, lint problems, version, revision."""

import io
import json

import pytest
from django.core.exceptions import ValidationError

from datasets_app.blueprints.services import template_create, template_generate
from datasets_app.curation.content import content_hash
from datasets_app.curation.rows import PairBuilder, db_rows, example_columns
from datasets_app.curation.services import example_create, example_update, examples_bulk_create
from datasets_app.errors import BulkInvalid
from datasets_app.imports.services import dataset_import
from datasets_app.models import Example, ExampleRevision, ExampleStatus
from tests.datasets_app.blueprints.test_services import GUARDRAIL

pytestmark = pytest.mark.django_db

LEFTOVER = {"prompt": "Explain {topic} to me.", "response": "Sure: it is simple."}


def codes(example: Example) -> list[str]:
    return [item["code"] for item in example.problems]


def assert_built(example: Example, *, version: int = 1) -> None:
    """What the builder stores on every pair: the content hash, the lint findings and their count, the version."""
    stored = Example.objects.get(pk=example.pk)
    assert stored.content_hash == content_hash(
        prompt=stored.prompt, response=stored.response, system_prompt=stored.system_prompt, history=stored.history
    )
    assert stored.problem_count == len(stored.problems)
    assert stored.version == version


def test_a_pair_made_in_the_editor_is_hashed_linted_and_recorded(dataset, annotator):
    example = example_create(dataset=dataset, user=annotator, **LEFTOVER)

    assert_built(example)
    assert codes(example) == ["placeholder"]
    assert [r.action for r in example.revisions.all()] == [ExampleRevision.Action.CREATE]
    assert (example.created_by, example.updated_by) == (annotator, annotator)


def test_pairs_created_in_bulk_are_hashed_and_linted(dataset, annotator):
    created, _ = examples_bulk_create(dataset=dataset, user=annotator, items=[LEFTOVER, {"prompt": "Fine?"}])

    for example in created:
        assert_built(example)
    assert [codes(Example.objects.get(pk=e.pk)) for e in created] == [["placeholder"], ["missing_response"]]


def test_imported_pairs_are_hashed_and_linted_with_every_column_the_model_has(dataset, annotator):
    lines = [LEFTOVER, {"prompt": "Fine?", "response": "Yes.", "tags": ["a"], "system": "Be brief."}]
    stream = io.BytesIO("\n".join(json.dumps(line) for line in lines).encode())

    dataset_import(dataset=dataset, user=annotator, stream=stream, filename="pairs.jsonl")

    imported = list(dataset.examples.order_by("id"))
    for example in imported:
        assert_built(example)
    assert [codes(e) for e in imported] == [["placeholder"], []]
    # the same pair made by the editor stores the same value in every column but where it came from and when
    made = example_create(
        dataset=dataset, user=annotator, prompt="Fine?", response="Yes.", tags=["a"], system_prompt="Be brief.",
        allow_duplicate=True,
    )  # fmt: skip
    differ = {"id", "source", "created_at", "updated_at"}
    for field in Example._meta.concrete_fields:
        if field.attname not in differ:
            assert getattr(imported[1], field.attname) == getattr(made, field.attname), field.name
    assert imported[1].source == "import:pairs.jsonl"


def test_generated_pairs_are_hashed_and_linted_against_their_template(workspace, dataset, lead):
    template = template_create(workspace=workspace, user=lead, name="Kitchen", kind="guardrail", spec=GUARDRAIL)

    template_generate(template=template, dataset=dataset, user=lead)

    generated = list(dataset.examples.all())
    assert len(generated) == 5
    for example in generated:
        assert_built(example)
    drafts = [e for e in generated if e.status == ExampleStatus.DRAFT]
    assert {tuple(codes(e)) for e in drafts} == {("missing_response",)}


def test_an_edit_is_rehashed_relinted_versioned_and_recorded(dataset, annotator):
    example = example_create(dataset=dataset, user=annotator, prompt="Fine?", response="Yes.")

    edited = example_update(
        example=example, user=annotator, expected_version=1, response="Yes, {topic}.", source="model:test"
    )

    assert_built(edited, version=2)
    assert codes(Example.objects.get(pk=example.pk)) == ["placeholder"]
    assert edited.source == "model:test"
    assert [r.action for r in edited.revisions.order_by("version")] == ["create", "edit"]


def test_every_write_path_refuses_what_the_builder_refuses(dataset, annotator):
    bad = {"prompt": "Fine?", "response": "", "status": ExampleStatus.SUBMITTED}
    with pytest.raises(ValidationError) as refused:
        example_create(dataset=dataset, user=annotator, **bad)
    assert "response" in refused.value.message_dict
    with pytest.raises(BulkInvalid) as refused_in_bulk:
        examples_bulk_create(dataset=dataset, user=annotator, items=[bad])
    assert "response" in refused_in_bulk.value.problems[0]
    with pytest.raises(ValidationError) as too_long:
        PairBuilder(dataset=dataset, user=annotator).row(prompt="Fine?", response="Yes.", source="x" * 300)
    assert "source" in too_long.value.message_dict
    assert dataset.examples.count() == 0


QUESTION = {"role": "user", "content": "Capital of France?"}


def test_an_assistant_turn_keeps_its_weight_and_the_hash_tells_weight_0_apart(dataset, annotator):
    def stored(answer: dict) -> Example:
        return example_create(dataset=dataset, user=annotator, prompt="Sure?", response="Paris.",
                              history=[QUESTION, answer], allow_duplicate=True)  # fmt: skip

    plain, trained, context = (
        stored({"role": "assistant", "content": "Lyon?", **weight}) for weight in ({}, {"weight": 1}, {"weight": 0})
    )

    assert Example.objects.get(pk=context.pk).history[1] == {"role": "assistant", "content": "Lyon?", "weight": 0}
    assert Example.objects.get(pk=trained.pk).history[1]["weight"] == 1
    # weight 1 is what a turn without a weight gets: the same pair; weight 0 trains on less: another pair
    assert plain.content_hash == trained.content_hash != context.content_hash
    # and a pair without weights hashes as it always did
    assert plain.content_hash == content_hash(prompt="Sure?", response="Paris.",
                                              history=[QUESTION, {"role": "assistant", "content": "Lyon?"}])  # fmt: skip


@pytest.mark.parametrize(
    ("turn", "message"),
    [
        ({"role": "user", "content": "Hi", "weight": 1}, "history[1].weight is only allowed on an assistant turn"),
        ({"role": "assistant", "content": "Hi", "weight": 2}, "history[1].weight must be 0 or 1"),
        ({"role": "assistant", "content": "Hi", "weight": True}, "history[1].weight must be 0 or 1"),
        ({"role": "assistant", "content": "Hi", "weight": 1.0}, "history[1].weight must be 0 or 1"),
        ({"role": "assistant", "content": "Hi", "score": 1}, "history[1] must be an object with 'role' and 'content'"),
    ],
)
def test_a_bad_weight_is_refused_naming_the_turn(dataset, annotator, turn, message):
    with pytest.raises(ValidationError) as refused:
        example_create(dataset=dataset, user=annotator, prompt="Q", response="A", history=[QUESTION, turn])

    assert refused.value.message_dict["history"][0].startswith(message)
    assert dataset.examples.count() == 0


def test_the_importers_columns_are_the_models_columns():
    # A field added to Example is written by every path without touching the importer: the columns are read
    # off the model, and a built row has a value for each of them.
    model_columns = [f.column for f in Example._meta.concrete_fields if not f.primary_key]
    assert list(example_columns()) == model_columns
    assert list(example_columns(with_id=True)) == ["id", *model_columns]


def test_a_built_row_has_a_value_for_every_column_in_the_databases_form(dataset, annotator):
    row = PairBuilder(dataset=dataset, user=annotator).row(
        prompt="Hi?", response="Hello.", history=[{"role": "user", "content": "Earlier"}], tags=["t"]
    )
    assert set(row) == {f.attname for f in Example._meta.concrete_fields if not f.primary_key}
    (values,) = db_rows([row])
    stored = dict(zip(example_columns(), values, strict=True))
    assert json.loads(stored["history"]) == [{"role": "user", "content": "Earlier"}]
    assert json.loads(stored["tags"]) == ["t"]
    assert stored["content_hash"] == content_hash(
        prompt="Hi?", response="Hello.", history=[{"role": "user", "content": "Earlier"}]
    )


def test_the_admin_shows_pairs_but_neither_adds_nor_edits_them(client, dataset, annotator):
    example = example_create(dataset=dataset, user=annotator, prompt="Fine?", response="Yes.")
    root = type(annotator).objects.create_superuser("root", password="pw-for-tests-1")
    client.force_login(root)

    assert client.get(f"/admin/datasets_app/example/{example.pk}/change/").status_code == 200
    assert client.get("/admin/datasets_app/example/add/").status_code == 403
    edit = client.post(f"/admin/datasets_app/example/{example.pk}/change/", {"prompt": "Changed?", "response": "No."})
    assert edit.status_code == 403
    assert Example.objects.get(pk=example.pk).prompt == "Fine?"
