"""Demo users, a demo workspace, two templates and the datasets made from them, created idempotently for `make run`."""

import json
from pathlib import Path

from django.contrib.auth import get_user_model
from django.db import transaction

from datasets_app.blueprints.services import template_create, template_generate_now
from datasets_app.curation.services import (
    dataset_create,
    example_set_status,
    example_update,
    membership_set,
    workspace_create,
)
from datasets_app.models import Dataset, DatasetKind, Example, ExampleStatus, Role, Template, Workspace

DATA_DIR = Path(__file__).parent / "demo_data"
WORKSPACE_NAME = "Demo workspace"
DEMO_USERS = [
    {"username": "admin", "password": "admin-demo-pw", "role": Role.ADMIN, "about": "workspace admin, Django admin"},
    {
        "username": "lead",
        "password": "lead-demo-pw",
        "role": Role.LEAD,
        "about": "reviews pairs, builds templates, starts runs",
    },
    {
        "username": "annotator",
        "password": "annotator-demo-pw",
        "role": Role.ANNOTATOR,
        "about": "writes and submits pairs",
    },
]
DEMO_DATASETS = [
    {
        "name": "Support assistant guardrails",
        "kind": DatasetKind.GUARDRAIL,
        "template": "guardrail_template.json",
        "answers": "guardrail_answers.jsonl",
        "description": "Acme Kitchen's assistant declines medical, investment and legal advice and keeps answering cooking questions.",
        "guidelines": (
            "## Guardrail pairs\n\n"
            "- Tag each pair `blocked:<topic>` or `allowed:<topic>`.\n"
            "- Blocked topics get the refusal **exactly** as the template writes it.\n"
            "- Allowed questions get a helpful answer of at most four sentences."
        ),
    },
    {
        "name": "MCQ writer",
        "kind": DatasetKind.MCQ,
        "template": "mcq_template.json",
        "answers": "mcq_answers.jsonl",
        "description": "Multiple-choice questions in one fixed format: question, options A) to D), answer, explanation.",
        "guidelines": (
            "## MCQ format\n\n"
            "```\nQuestion: ...?\nA) ...\nB) ...\nC) ...\nD) ...\nAnswer: <letter>\nExplanation: ...\n```\n\n"
            "Exactly one correct option; options distinct; vary the correct letter."
        ),
    },
]


def _demo_status(index: int) -> str:
    """Most demo pairs are approved (ready to train on); some wait for review, a few are drafts."""
    if index % 8 == 5:
        return ExampleStatus.SUBMITTED
    if index % 8 == 7:
        return ExampleStatus.DRAFT
    return ExampleStatus.APPROVED


@transaction.atomic
def seed_demo() -> dict[str, int]:
    """Create what is missing; running it again creates nothing new.

    The datasets are made the way a team would make them: a lead builds a template and generates
    its pairs, an annotator writes the answers the template leaves open, and the lead reviews.
    """
    users = {spec["username"]: _demo_user(spec) for spec in DEMO_USERS}
    workspace = Workspace.objects.filter(name=WORKSPACE_NAME, created_by=users["admin"]).first() or workspace_create(
        name=WORKSPACE_NAME, user=users["admin"], description="Two demo datasets to try Instructory with."
    )
    for spec in DEMO_USERS:  # the system adds the demo team directly (people otherwise join by invitation)
        membership_set(workspace=workspace, user=users[spec["username"]], role=spec["role"], by=None)
    created = {}
    for spec in DEMO_DATASETS:
        created[spec["name"]] = _seed_dataset(workspace, spec, lead=users["lead"], annotator=users["annotator"])
    return created


def _demo_user(spec: dict) -> object:
    user, made = get_user_model().objects.get_or_create(username=spec["username"])
    if made:
        user.set_password(spec["password"])
        user.is_staff = user.is_superuser = spec["role"] == Role.ADMIN
        user.save()
    return user


def _seed_dataset(workspace: Workspace, spec: dict, *, lead: object, annotator: object) -> int:
    dataset = Dataset.objects.filter(workspace=workspace, name=spec["name"]).first() or dataset_create(
        workspace=workspace,
        user=lead,
        name=spec["name"],
        kind=spec["kind"],
        description=spec["description"],
        guidelines=spec["guidelines"],
    )
    template = _demo_template(workspace, spec["template"], lead=lead)
    outcome = template_generate_now(template=template, dataset=dataset, user=lead)
    answers = _answers(spec["answers"])
    examples = Example.objects.filter(pk__in=outcome.example_ids).order_by("id")
    for index, example in enumerate(examples):
        if example.prompt in answers:
            example = example_update(
                example=example, user=annotator, expected_version=example.version, response=answers[example.prompt]
            )
        _review(example, _demo_status(index), lead=lead, annotator=annotator)
    return outcome.created


def _demo_template(workspace: Workspace, filename: str, *, lead: object) -> Template:
    data = json.loads((DATA_DIR / filename).read_text(encoding="utf-8"))
    existing = Template.objects.filter(workspace=workspace, name=data["name"]).first()
    return existing or template_create(workspace=workspace, user=lead, **data)


def _answers(filename: str) -> dict[str, str]:
    lines = (DATA_DIR / filename).read_text(encoding="utf-8").splitlines()
    return {record["prompt"]: record["response"] for record in map(json.loads, lines)}


def _review(example: Example, status: str, *, lead: object, annotator: object) -> None:
    """Move a freshly generated pair to the demo status (refusals start submitted, answers as drafts)."""
    if status == ExampleStatus.DRAFT:
        return
    if example.status == ExampleStatus.DRAFT:
        example = example_set_status(example=example, user=annotator, action="submit")
    if status == ExampleStatus.APPROVED:
        example_set_status(example=example, user=lead, action="approve")
