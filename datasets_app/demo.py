"""Demo users, a demo workspace and two demo datasets, created idempotently for `make run`."""

import json
from pathlib import Path

from django.contrib.auth import get_user_model
from django.db import transaction

from datasets_app.models import Dataset, DatasetKind, ExampleStatus, Role, Workspace
from datasets_app.services import (
    DuplicateExample,
    dataset_create,
    example_create,
    example_set_status,
    membership_set,
    workspace_create,
)

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
        "file": "guardrail.jsonl",
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
        "file": "mcq.jsonl",
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
    """Create what is missing; running it again creates nothing new."""
    users = {spec["username"]: _demo_user(spec) for spec in DEMO_USERS}
    workspace = Workspace.objects.filter(name=WORKSPACE_NAME).first() or workspace_create(
        name=WORKSPACE_NAME, user=users["admin"], description="Two demo datasets to try Instructory with."
    )
    for spec in DEMO_USERS:
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
    created = 0
    for index, line in enumerate((DATA_DIR / spec["file"]).read_text(encoding="utf-8").splitlines()):
        record = json.loads(line)
        try:
            example = example_create(
                dataset=dataset,
                user=annotator,
                prompt=record["prompt"],
                response=record["response"],
                system_prompt=record.get("system", ""),
                tags=record.get("tags", []),
                source="demo",
            )
        except DuplicateExample:
            continue
        created += 1
        status = _demo_status(index)
        if status != ExampleStatus.DRAFT:
            example = example_set_status(example=example, user=annotator, action="submit")
        if status == ExampleStatus.APPROVED:
            example_set_status(example=example, user=lead, action="approve")
    return created
