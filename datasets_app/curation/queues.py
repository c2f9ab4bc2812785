"""The browser workspace: work queues with leases, save-and-transition, and bulk actions on selected pairs.

Built on the single-pair services, so every change here is versioned, linted and recorded like any other.
"""

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from datasets_app.curation.selectors import role_require
from datasets_app.curation.services import example_delete, example_set_status, example_update
from datasets_app.errors import StaleVersion
from datasets_app.models import Dataset, Example, ExampleLease, ExampleSplit, ExampleStatus, Role

LEASE_TTL = timedelta(minutes=10)
QUEUE_STATUSES = {"review": ExampleStatus.SUBMITTED, "draft": ExampleStatus.DRAFT, "rejected": ExampleStatus.REJECTED}
QUEUE_ROLES = {"review": Role.LEAD, "draft": Role.ANNOTATOR, "rejected": Role.ANNOTATOR}
QUEUE_CANDIDATES = 20
# "LEAS": the first key of the queues' PostgreSQL advisory locks; the second is the dataset id.
LEASE_LOCK_SPACE = 0x4C454153


@transaction.atomic
def example_lease_next(
    *, dataset: Dataset, user: AbstractBaseUser, queue: str, after_id: int | None = None
) -> Example | None:
    """Claim the oldest pair of a queue that no one else holds (after `after_id`, wrapping round), or None.

    The claim is a conditional UPDATE of an expired or own lease, or an INSERT that the unique example
    column lets only one of two racing users win, so two people never get the same pair at once.
    None means no pair of the queue was free: claims in one dataset take turns (see _claims_take_turns), and
    a candidate lost anyway (an expired lease its holder renewed meanwhile) is skipped and the queue read
    again, until a read finds no pair that was not tried already.
    """
    role_require(user=user, workspace=dataset.workspace, role=QUEUE_ROLES[queue])
    _claims_take_turns(dataset=dataset)
    now = timezone.now()
    held = ExampleLease.objects.filter(expires_at__gt=now).exclude(user_id=user.pk).values("example_id")
    free = dataset.examples.filter(status=QUEUE_STATUSES[queue]).exclude(id__in=held).order_by("id")
    tried: set[int] = set()
    while candidates := _lease_candidates(free.exclude(id__in=tried), after_id=after_id or 0):
        for pk in candidates:
            if _lease_claim(example_id=pk, user=user, now=now):
                ExampleLease.objects.filter(user_id=user.pk, example__dataset=dataset).exclude(example_id=pk).delete()
                return Example.objects.select_related("dataset__workspace").get(pk=pk)
        tried.update(candidates)  # each round rules out at least one pair, so the loop ends
    return None


def _claims_take_turns(*, dataset: Dataset) -> None:
    """Make this transaction's claims wait for other claims in the dataset to commit, so it reads their leases.

    Without turns a reviewer's candidates can all be taken by others who, in the same moment, give back
    pairs it never read, and it is told "none" with pairs free (PostgreSQL's READ COMMITTED: re-reading
    excluding what was lost still misses pairs given back after they were tried). SQLite needs nothing:
    its IMMEDIATE transactions already take the write lock before the first read. On PostgreSQL a
    transaction-level advisory lock per dataset (released at commit) does it without locking any row that
    other writes use; a claim holds it for a few milliseconds.
    """
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [LEASE_LOCK_SPACE, dataset.pk % 2**31])


def _lease_candidates(free: QuerySet[Example], *, after_id: int) -> list[int]:
    """Up to QUEUE_CANDIDATES free pair ids in queue order: those after `after_id`, then from the start."""
    ids = list(free.filter(id__gt=after_id).values_list("id", flat=True)[:QUEUE_CANDIDATES])
    if len(ids) < QUEUE_CANDIDATES:
        ids += free.filter(id__lte=after_id).values_list("id", flat=True)[: QUEUE_CANDIDATES - len(ids)]
    return ids


def _lease_claim(*, example_id: int, user: AbstractBaseUser, now: datetime) -> bool:
    taken = (
        ExampleLease.objects.filter(example_id=example_id)
        .filter(Q(expires_at__lte=now) | Q(user_id=user.pk))
        .update(user_id=user.pk, expires_at=now + LEASE_TTL, updated_at=now)
    )
    if taken:
        return True
    if ExampleLease.objects.filter(example_id=example_id).exists():
        return False  # someone else's live lease
    try:
        with transaction.atomic():  # a savepoint: losing the race must not spoil the outer transaction
            ExampleLease.objects.create(example_id=example_id, user_id=user.pk, expires_at=now + LEASE_TTL)
    except IntegrityError:
        return False
    return True


def example_lease_renew(*, example: Example, user: AbstractBaseUser) -> bool:
    """Extend the user's own lease while they keep working on the pair; False if it is gone or someone else's."""
    now = timezone.now()
    return bool(
        ExampleLease.objects.filter(example=example, user_id=user.pk).update(expires_at=now + LEASE_TTL, updated_at=now)
    )


def example_lease_release(*, example: Example, user: AbstractBaseUser) -> None:
    """Give the pair back to the queue (after a save & next or a status change)."""
    ExampleLease.objects.filter(example=example, user_id=user.pk).delete()


@transaction.atomic
def example_save(
    *,
    example: Example,
    user: AbstractBaseUser,
    expected_version: int,
    fields: dict[str, Any],
    action: str | None = None,
    comment: str = "",
    release: bool = False,
) -> Example:
    """The editor's save: the text changes and then, optionally, a status action, in one transaction.

    Refuses a stale version (StaleVersion) before anything is written; releases the user's lease when
    the action or `release` says they are done with the pair.
    """
    saved = example_update(example=example, user=user, expected_version=expected_version, **fields)
    if action is not None:
        saved = example_set_status(
            example=saved, user=user, action=action, comment=comment, expected_version=saved.version
        )
    if action is not None or release:
        example_lease_release(example=saved, user=user)
    return saved


BULK_ACTIONS = {
    "submit": Role.ANNOTATOR,
    "approve": Role.LEAD,
    "reject": Role.LEAD,
    "add_tag": Role.ANNOTATOR,
    "remove_tag": Role.ANNOTATOR,
    "move_eval": Role.ANNOTATOR,
    "move_train": Role.ANNOTATOR,
    "delete": Role.LEAD,
}
MOVES = {"move_eval": ExampleSplit.EVAL, "move_train": ExampleSplit.TRAIN}


@dataclass
class BulkOutcome:
    changed: list[int] = field(default_factory=list)
    skipped: list[tuple[int, str]] = field(default_factory=list)  # (example id, why)


@transaction.atomic
def examples_bulk_action(
    *,
    dataset: Dataset,
    user: AbstractBaseUser,
    versions: dict[int, int],
    action: str,
    comment: str = "",
    tag: str = "",
) -> BulkOutcome:
    """Apply one action to the selected pairs ({id: version the user saw}) through the single-pair services.

    All in one transaction. A pair that changed since the user saw it (stale), is already in the target
    state, or fails validation is skipped with the reason; the rest change.
    """
    if action not in BULK_ACTIONS:
        raise ValidationError({"action": f"unknown action {action!r}"})
    role_require(user=user, workspace=dataset.workspace, role=BULK_ACTIONS[action])
    if action == "reject" and not comment.strip():
        raise ValidationError({"comment": "a rejection needs a comment that tells the annotator what to fix"})
    tag = tag.strip()
    if action in ("add_tag", "remove_tag") and not tag:
        raise ValidationError({"tag": "name the tag to add or remove"})
    outcome = BulkOutcome()
    found = {e.pk: e for e in Example.objects.select_for_update().filter(dataset=dataset, pk__in=list(versions))}
    for pk, version in sorted(versions.items()):
        example = found.get(pk)
        reason = _bulk_skip_reason(example, version=version, action=action, tag=tag)
        if reason:
            outcome.skipped.append((pk, reason))
            continue
        assert example is not None
        try:
            with transaction.atomic():
                _bulk_apply(example, user=user, action=action, comment=comment, tag=tag)
        except ValidationError as error:
            outcome.skipped.append((pk, _reason(error)))
        except StaleVersion:
            outcome.skipped.append((pk, "changed since you loaded the page"))
        else:
            outcome.changed.append(pk)
    return outcome


def _reason(error: ValidationError) -> str:
    """ "rejected: may not be blank once submitted." naming the field, when the error names one."""
    if hasattr(error, "error_dict"):
        return "; ".join(
            f"{field}: {message}" for field, messages in error.message_dict.items() for message in messages
        )
    return "; ".join(error.messages)


def _bulk_skip_reason(example: Example | None, *, version: int, action: str, tag: str) -> str:
    if example is None:
        return "no longer exists"
    if example.version != version:
        return "changed since you loaded the page"
    target = {"submit": ExampleStatus.SUBMITTED, "approve": ExampleStatus.APPROVED, "reject": ExampleStatus.REJECTED}
    if action in target and example.status == target[action]:
        return f"already {example.get_status_display().lower()}"
    if action == "submit" and example.status == ExampleStatus.APPROVED:
        return "already approved"
    if action == "add_tag" and tag in example.tags:
        return f"already tagged {tag}"
    if action == "remove_tag" and tag not in example.tags:
        return f"not tagged {tag}"
    if action in MOVES and example.split == MOVES[action]:
        return f"already in the {example.get_split_display().lower()}"
    return ""


def _bulk_apply(example: Example, *, user: AbstractBaseUser, action: str, comment: str, tag: str) -> None:
    if action == "delete":
        example_delete(example=example, user=user)
    elif action == "add_tag":
        example_update(example=example, user=user, expected_version=example.version, tags=[*example.tags, tag])
    elif action == "remove_tag":
        tags = [name for name in example.tags if name != tag]
        example_update(example=example, user=user, expected_version=example.version, tags=tags)
    elif action in MOVES:
        example_update(example=example, user=user, expected_version=example.version, split=MOVES[action])
    else:
        example_set_status(example=example, user=user, action=action, comment=comment, expected_version=example.version)
        example_lease_release(example=example, user=user)
