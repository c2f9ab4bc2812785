"""Every write to workspaces, memberships, datasets and examples goes through here (queues.py builds on these)."""

from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import ProtectedError

from datasets_app.curation.limits import texts_require
from datasets_app.curation.rows import PairBuilder, pair_hash, pair_refresh
from datasets_app.curation.selectors import role_require, status_counts_key
from datasets_app.errors import BulkInvalid, Conflict, DuplicateExample, InUse, NotAMember, StaleVersion
from datasets_app.lint.checks import TEMPLATE_CODES, describe
from datasets_app.lint.jobs import lint_job_create
from datasets_app.models import (
    Dataset,
    DatasetKind,
    Example,
    ExampleRevision,
    ExampleSplit,
    ExampleStatus,
    Membership,
    Role,
    Workspace,
)

EDITABLE_FIELDS = ("system_prompt", "prompt", "response", "rejected", "history", "tags")
TRACKED_FIELDS = (*EDITABLE_FIELDS, "status", "review_comment", "split")
DATASET_SETTINGS = ("name", "kind", "description", "guidelines", "template", "require_valid", "refuse_eval_overlap")
STATUS_ACTIONS = {
    "submit": (ExampleStatus.SUBMITTED, Role.ANNOTATOR),
    "approve": (ExampleStatus.APPROVED, Role.LEAD),
    "reject": (ExampleStatus.REJECTED, Role.LEAD),
    "reopen": (ExampleStatus.DRAFT, Role.ANNOTATOR),
}


def _snapshot(example: Example) -> dict[str, Any]:
    return {name: getattr(example, name) for name in TRACKED_FIELDS}


def _record_revision(
    *, example: Example, user: AbstractBaseUser | None, action: str, before: dict[str, Any], comment: str = ""
) -> None:
    after = _snapshot(example)
    changed = [name for name in TRACKED_FIELDS if before.get(name) != after[name]]
    ExampleRevision.objects.create(
        example=example,
        version=example.version,
        action=action,
        user=user,
        before={name: before[name] for name in changed if name in before},
        after={name: after[name] for name in changed},
        comment=comment,
    )


LINT_RELATED = ("dataset__workspace", "dataset__template")  # what the lint on save reads, fetched with the pair


def _require_valid(example: Example) -> None:
    """Refuse to approve a pair that fails its dataset's template, when the dataset asks for valid pairs."""
    dataset = example.dataset
    if not (dataset.require_valid and dataset.template_id):
        return
    failed = [item for item in example.problems if item["code"] in TEMPLATE_CODES]
    if failed:
        more = f" (and {len(failed) - 3} more)" if len(failed) > 3 else ""
        raise Conflict(f"can't approve: {'; '.join(describe(item) for item in failed[:3])}{more}")


def dataset_counts_forget(*, dataset_id: int) -> None:
    """The dataset's pairs or their statuses changed: once this transaction commits, count them afresh.

    Every service that adds, deletes or moves pairs between statuses calls it, so the cached counts of a huge
    dataset (selectors.dataset_status_counts) follow writes from web requests, the API and workers alike. After
    the commit, or a page could count the old rows again and cache them; robust, since the write is done by then.
    """
    key = status_counts_key(dataset_id)
    transaction.on_commit(lambda: cache.delete(key), robust=True)


@transaction.atomic
def workspace_create(*, name: str, user: AbstractBaseUser, description: str = "") -> Workspace:
    """A new workspace; its creator becomes its admin. Names are unique per creator only, so creating one
    tells no one what other teams have called theirs."""
    texts_require(name=name, description=description)
    workspace = Workspace(name=name.strip(), description=description, created_by=user)
    taken = Conflict({"name": [f"you already have a workspace named {workspace.name!r}"]})
    if Workspace.objects.filter(created_by=user, name=workspace.name).exists():
        raise taken
    workspace.full_clean(validate_constraints=False)
    try:
        with transaction.atomic():
            workspace.save()
    except IntegrityError as error:  # the same user, twice at once
        raise taken from error
    Membership.objects.create(workspace=workspace, user=user, role=Role.ADMIN)
    return workspace


@transaction.atomic
def membership_set(
    *, workspace: Workspace, user: AbstractBaseUser, role: str, by: AbstractBaseUser | None
) -> Membership:
    """Change a member's role (workspace admins). People join by accepting an invitation (curation/invitations.py);
    only the system itself (by=None: the demo, scripts) adds a member directly.

    Raises NotAMember for someone who is not a member; refuses to leave the workspace without an admin.
    """
    role = Role(role)
    if by is None:
        membership, _ = Membership.objects.update_or_create(workspace=workspace, user=user, defaults={"role": role})
        return membership
    role_require(user=by, workspace=workspace, role=Role.ADMIN)
    membership = Membership.objects.select_for_update().filter(workspace=workspace, user=user).first()
    if membership is None:
        raise NotAMember(user)
    if membership.role == Role.ADMIN and role != Role.ADMIN:
        admins = Membership.objects.select_for_update().filter(workspace=workspace, role=Role.ADMIN)
        if admins.count() == 1:
            raise Conflict({"role": ["the workspace needs an admin: make someone else admin first"]})
    if membership.role != role:
        membership.role = role
        membership.save(update_fields=["role", "updated_at"])
    return membership


@transaction.atomic
def dataset_create(
    *,
    workspace: Workspace,
    user: AbstractBaseUser,
    name: str,
    kind: str = "general",
    description: str = "",
    guidelines: str = "",
) -> Dataset:
    """A new dataset; leads and admins only."""
    role_require(user=user, workspace=workspace, role=Role.LEAD)
    texts_require(name=name, description=description, guidelines=guidelines)
    dataset = Dataset(
        workspace=workspace,
        name=name.strip(),
        kind=kind,
        description=description,
        guidelines=guidelines,
        created_by=user,
    )
    _dataset_save(dataset)
    return dataset


@transaction.atomic
def dataset_update(*, dataset: Dataset, user: AbstractBaseUser, **fields: Any) -> Dataset:
    """Edit a dataset's settings (leads); its template, if set, must be one of the workspace's."""
    role_require(user=user, workspace=dataset.workspace, role=Role.LEAD)
    template_before = dataset.template_id
    if "kind" in fields:
        _kind_require(dataset, fields["kind"])
    for name, value in fields.items():
        if name not in DATASET_SETTINGS:
            raise ValueError(f"{name} cannot be changed")
        setattr(dataset, name, value)
    texts_require(**{name: value for name, value in fields.items() if name in ("name", "description", "guidelines")})
    if dataset.template is not None and dataset.template.workspace_id != dataset.workspace_id:
        raise ValidationError({"template": ["the template must be in the dataset's workspace"]})
    _dataset_save(dataset)
    if dataset.template_id != template_before:  # another validator: every pair's problems change
        lint_job_create(dataset=dataset, user=user)
    return dataset


def _kind_require(dataset: Dataset, kind: str) -> None:
    """A dataset that holds pairs cannot become, or stop being, a preference dataset: its pairs' sides would not fit
    (a general pair has no rejected answer; a preference pair's would be lost)."""
    changes_sides = kind != dataset.kind and DatasetKind.PREFERENCE in (kind, dataset.kind)
    if changes_sides and dataset.examples.exists():
        raise Conflict(
            {"kind": ["this dataset has pairs, so it cannot become or stop being a preference dataset; "
                      "create a new dataset of the kind you need and import its pairs there"]}
        )  # fmt: skip


def _dataset_save(dataset: Dataset) -> None:
    """Check and save; a name the workspace already has is a Conflict, also when two requests race for it."""
    dataset.full_clean(validate_constraints=False)
    taken = Conflict({"name": [f"this workspace already has a dataset named {dataset.name!r}"]})
    if Dataset.objects.filter(workspace_id=dataset.workspace_id, name=dataset.name).exclude(pk=dataset.pk).exists():
        raise taken
    try:
        with transaction.atomic():
            dataset.save()
    except IntegrityError as error:
        raise taken from error


@transaction.atomic
def dataset_delete(*, dataset: Dataset, user: AbstractBaseUser) -> None:
    """Delete a dataset with its pairs and snapshots (leads). Refuses (InUse) while fine-tuning runs use it: a run
    keeps the snapshot it was trained on (a protected foreign key), so its results stay explained."""
    role_require(user=user, workspace=dataset.workspace, role=Role.LEAD)
    dataset_counts_forget(dataset_id=dataset.pk)
    try:
        with transaction.atomic():
            dataset.delete()
    except ProtectedError as error:
        runs = len(error.protected_objects)
        raise InUse(
            f"This dataset is used by {runs} fine-tuning run{'' if runs == 1 else 's'}, trained on its snapshots; "
            "it cannot be deleted while they exist."
        ) from error


@transaction.atomic
def example_create(
    *,
    dataset: Dataset,
    user: AbstractBaseUser | None,
    prompt: str,
    response: str,
    system_prompt: str = "",
    history: list[dict[str, str]] | None = None,
    tags: list[str] | None = None,
    source: str = "manual",
    status: str = ExampleStatus.DRAFT,
    split: str = ExampleSplit.TRAIN,
    allow_duplicate: bool = False,
    rejected: str = "",
) -> Example:
    """A new pair (in the training set, or the evaluation set); refuses one whose normalized content the dataset
    already holds. In a preference dataset `response` is the chosen answer and `rejected` the rejected one."""
    if user is not None:
        role_require(
            user=user,
            workspace=dataset.workspace,
            role=Role.ANNOTATOR if status in (ExampleStatus.DRAFT, ExampleStatus.SUBMITTED) else Role.LEAD,
        )
    example = PairBuilder(dataset=dataset, user=user).example(
        prompt=prompt, response=response, system_prompt=system_prompt, history=history, tags=tags, source=source,
        status=status, split=split, rejected=rejected,
    )  # fmt: skip
    if not allow_duplicate:
        existing = dataset.examples.filter(content_hash=example.content_hash).first()
        if existing is not None:
            raise DuplicateExample(existing=existing)
    example.save()
    _record_revision(example=example, user=user, action=ExampleRevision.Action.CREATE, before={})
    dataset_counts_forget(dataset_id=dataset.pk)
    return example


@transaction.atomic
def example_update(
    *, example: Example, user: AbstractBaseUser, expected_version: int, source: str | None = None, **fields: Any
) -> Example:
    """Edit a pair's text, or move it between the training and the evaluation set (`split`), or both at once;
    refuses a stale version so no one's newer work is overwritten.

    `source` says where the new text came from (a model that drafted it); it is not an editable field.
    A move alone keeps an approved pair approved: its text, which the approval vouches for, is unchanged.
    """
    locked = Example.objects.select_for_update(of=("self",)).select_related(*LINT_RELATED).get(pk=example.pk)
    membership = role_require(user=user, workspace=locked.dataset.workspace, role=Role.ANNOTATOR)
    if locked.version != expected_version:
        raise StaleVersion(current=locked)
    unknown = set(fields) - {*EDITABLE_FIELDS, "split"}
    if unknown:
        raise ValueError(f"cannot edit {', '.join(sorted(unknown))}")
    before = _snapshot(locked)
    for name, value in fields.items():
        setattr(locked, name, value)
    if _snapshot(locked) == before:
        return locked
    edited = any(getattr(locked, name) != before[name] for name in EDITABLE_FIELDS)
    if edited and locked.status == ExampleStatus.APPROVED and not membership.allows(Role.LEAD):
        locked.status = ExampleStatus.SUBMITTED  # an annotator's change to approved data needs review again
    if source is not None:
        locked.source = source
    pair_refresh(locked, user=user)  # a move drops the duplicate findings too: they are found within a set
    locked.save()
    action = ExampleRevision.Action.EDIT if edited else ExampleRevision.Action.SPLIT
    _record_revision(example=locked, user=user, action=action, before=before)
    if locked.status != before["status"] or locked.split != before["split"]:
        dataset_counts_forget(dataset_id=locked.dataset_id)
    return locked


@transaction.atomic
def example_set_status(
    *, example: Example, user: AbstractBaseUser, action: str, comment: str = "", expected_version: int | None = None
) -> Example:
    """Submit, approve, reject (with a comment) or reopen a pair."""
    if action not in STATUS_ACTIONS:
        raise ValidationError({"action": f"unknown action {action!r}; expected one of {', '.join(STATUS_ACTIONS)}"})
    if action == "reject" and not comment.strip():  # the request's own faults first, whatever the pair's state
        raise ValidationError({"comment": "a rejection needs a comment that tells the annotator what to fix"})
    texts_require(comment=comment)
    status, role = STATUS_ACTIONS[action]
    locked = Example.objects.select_for_update(of=("self",)).select_related(*LINT_RELATED).get(pk=example.pk)
    role_require(user=user, workspace=locked.dataset.workspace, role=role)
    if expected_version is not None and locked.version != expected_version:
        raise StaleVersion(current=locked)
    before = _snapshot(locked)
    locked.status = status
    locked.review_comment = comment.strip() if action in ("approve", "reject") else locked.review_comment
    pair_refresh(locked, user=user, keep_cross=True)
    if action == "approve":
        _require_valid(locked)
    locked.save()
    _record_revision(
        example=locked, user=user, action=ExampleRevision.Action.STATUS, before=before, comment=comment.strip()
    )
    dataset_counts_forget(dataset_id=locked.dataset_id)
    return locked


@transaction.atomic
def example_restore(*, revision: ExampleRevision, user: AbstractBaseUser, expected_version: int) -> Example:
    """Bring back the text of an earlier version; the restore is itself a new revision."""
    locked = Example.objects.select_for_update(of=("self",)).select_related(*LINT_RELATED).get(pk=revision.example_id)
    role_require(user=user, workspace=locked.dataset.workspace, role=Role.ANNOTATOR)
    if locked.version != expected_version:
        raise StaleVersion(current=locked)
    before = _snapshot(locked)
    for name, value in _fields_at(revision).items():
        setattr(locked, name, value)
    pair_refresh(locked, user=user)
    locked.save()
    _record_revision(
        example=locked,
        user=user,
        action=ExampleRevision.Action.RESTORE,
        before=before,
        comment=f"restored version {revision.version}",
    )
    return locked


def _fields_at(revision: ExampleRevision) -> dict[str, Any]:
    """The editable fields as they stood right after `revision`: today's values with every later change undone."""
    example = revision.example
    fields = _snapshot(example)
    for later in example.revisions.filter(version__gt=revision.version).order_by("-version", "-id"):
        fields.update(later.before)
    return {name: fields[name] for name in EDITABLE_FIELDS}


@transaction.atomic
def example_delete(*, example: Example, user: AbstractBaseUser) -> None:
    """Deleting pairs is for leads."""
    role_require(user=user, workspace=example.dataset.workspace, role=Role.LEAD)
    dataset_counts_forget(dataset_id=example.dataset_id)
    example.delete()


@transaction.atomic
def dataset_rehash(*, dataset_id: int, batch_size: int = 1000) -> int:
    """Recompute the content hash of every pair in a dataset; returns how many changed."""
    changed = []
    for example in (
        Example.objects.filter(dataset_id=dataset_id)
        .only("id", "prompt", "response", "rejected", "system_prompt", "history", "content_hash")
        .iterator(chunk_size=batch_size)
    ):
        new = pair_hash(example)
        if example.content_hash != new:
            example.content_hash = new
            changed.append(example)
    Example.objects.bulk_update(changed, ["content_hash"], batch_size=batch_size)
    return len(changed)


@transaction.atomic
def examples_bulk_create(
    *, dataset: Dataset, user: AbstractBaseUser, items: list[dict[str, Any]], keep_duplicates: bool = False
) -> tuple[list[Example], int]:
    """Create many pairs at once, all or nothing; returns the new pairs and how many duplicates were skipped."""
    role_require(user=user, workspace=dataset.workspace, role=Role.ANNOTATOR)
    seen = set() if keep_duplicates else set(dataset.examples.values_list("content_hash", flat=True))
    builder = PairBuilder(dataset=dataset, user=user)
    fresh, skipped, problems = [], 0, {}
    for index, item in enumerate(items):
        try:
            example = builder.example(**item)
        except ValidationError as error:
            problems[index] = error.message_dict
            continue
        if not keep_duplicates and example.content_hash in seen:
            skipped += 1
            continue
        seen.add(example.content_hash)
        fresh.append(example)
    if problems:
        raise BulkInvalid(problems)
    dataset_counts_forget(dataset_id=dataset.pk)
    return Example.objects.bulk_create(fresh, batch_size=1000), skipped
