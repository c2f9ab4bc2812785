"""Reads scoped to what the user may see."""

import json
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.core.cache import cache
from django.db import connection
from django.db.models import Count, Q, QuerySet
from django.shortcuts import get_object_or_404
from django.utils import timezone

from datasets_app.curation.search import PG_VECTOR, search_examples, with_tag
from datasets_app.errors import NotAllowed
from datasets_app.models import (
    Dataset,
    Example,
    ExampleLease,
    ExampleRevision,
    ExampleSplit,
    ExampleStatus,
    Job,
    Membership,
    Role,
    Template,
    Unstaged,
    Workspace,
)

User = AbstractBaseUser | AnonymousUser


def workspace_list(*, user: User) -> QuerySet[Workspace]:
    if not user.is_authenticated:
        return Workspace.objects.none()
    return Workspace.objects.filter(memberships__user=user)


def membership_get(*, user: User, workspace: Workspace) -> Membership | None:
    if not user.is_authenticated:
        return None
    return Membership.objects.filter(user=user, workspace=workspace).first()


def role_require(*, user: User, workspace: Workspace, role: str) -> Membership:
    """The user's membership if their role includes `role`; NotAllowed otherwise."""
    membership = membership_get(user=user, workspace=workspace)
    if membership is None or not membership.allows(role):
        raise NotAllowed(f"this needs the {role} role in workspace {workspace.name!r}")
    return membership


def dataset_list(*, user: User, workspace: Workspace | None = None) -> QuerySet[Dataset]:
    datasets = Dataset.objects.filter(workspace__in=workspace_list(user=user)).select_related("workspace")
    if workspace is not None:
        datasets = datasets.filter(workspace=workspace)
    return datasets


def dataset_list_with_counts(*, user: User) -> QuerySet[Dataset]:
    """Datasets with example counts by status and in the evaluation set, for the API's list (pairs of an unfinished
    import not counted)."""
    visible = Q(Unstaged("examples__id")) if connection.vendor == "sqlite" else Q()
    counts = {
        f"n_{status}": Count("examples", filter=Q(examples__status=status) & visible) for status in ExampleStatus.values
    }
    in_eval = Count("examples", filter=Q(examples__split=ExampleSplit.EVAL) & visible)
    return dataset_list(user=user).annotate(n_total=Count("examples", filter=visible), n_eval=in_eval, **counts)


def dataset_get(*, user: User, pk: int) -> Dataset:
    """A dataset the user can see, else 404 (outsiders cannot tell it exists)."""
    return get_object_or_404(dataset_list(user=user), pk=pk)


def example_get(*, user: User, pk: int) -> Example:
    visible = Example.objects.filter(dataset__workspace__in=workspace_list(user=user))
    # the editor names who created and who last changed the pair: joined here, not two more queries
    return get_object_or_404(visible.select_related("dataset__workspace", "created_by", "updated_by"), pk=pk)


def example_list(*, dataset: Dataset, status: str | None = None) -> QuerySet[Example]:
    examples = dataset.examples.all()
    if status:
        examples = examples.filter(status=status)
    return examples


def revision_list(*, example: Example) -> QuerySet[ExampleRevision]:
    return example.revisions.select_related("user").order_by("version", "id")


def can_review(*, user: User, workspace: Workspace) -> bool:
    membership = membership_get(user=user, workspace=workspace)
    return membership is not None and membership.allows(Role.LEAD)


def example_filter(
    *,
    dataset: Dataset,
    status: str | None = None,
    tag: str | None = None,
    search: str | None = None,
    source: str | None = None,
    author: str | None = None,
    updated_after: datetime | None = None,
    with_problems: bool = False,
    split: str | None = None,
) -> QuerySet[Example]:
    """A dataset's pairs narrowed by the filters the list views and the API offer; `source` ending in * is a prefix."""
    examples = example_list(dataset=dataset, status=status)
    if split:
        examples = examples.filter(split=split)
    if tag:
        examples = with_tag(examples, tag)
    if search:
        examples = search_examples(examples, search)
    if source:
        examples = (
            examples.filter(source__startswith=source[:-1]) if source.endswith("*") else examples.filter(source=source)
        )
    if author:
        examples = examples.filter(created_by__username=author)
    if updated_after is not None:
        examples = examples.filter(updated_at__gt=updated_after)
    if with_problems:
        examples = examples.filter(problem_count__gt=0)  # the (dataset, problem_count) index
    return examples


def template_list(*, user: User, workspace: Workspace | None = None) -> QuerySet[Template]:
    templates = Template.objects.filter(workspace__in=workspace_list(user=user)).select_related("workspace")
    return templates.filter(workspace=workspace) if workspace is not None else templates


def template_get(*, user: User, pk: int) -> Template:
    return get_object_or_404(template_list(user=user), pk=pk)


def job_get(*, user: User, pk: int) -> Job:
    visible = Job.objects.filter(dataset__workspace__in=workspace_list(user=user))
    return get_object_or_404(visible.select_related("dataset"), pk=pk)


# --- the browser workspace: pages of pairs, counts, work queues, history

PAGE_SIZE = 50


@dataclass(frozen=True)
class ExamplePage:
    """One page of pairs in id order, and the ids that the next and previous pages start from."""

    examples: list[Example]
    next_after: int | None
    previous_before: int | None


def example_page(
    *, examples: QuerySet[Example], after: int | None = None, before: int | None = None, size: int = PAGE_SIZE
) -> ExamplePage:
    """A page by id (keyset, never OFFSET), so the last page of a million pairs is as quick as the first."""
    if before is not None:
        rows = list(examples.filter(id__lt=before).order_by("-id")[: size + 1])
        if len(rows) > size:
            rows = rows[:size][::-1]
            return ExamplePage(rows, next_after=rows[-1].id, previous_before=rows[0].id)
        # Fewer than a page before `before`: we are back at the start, which is the first page.
        after = None
    query = examples.filter(id__gt=after) if after is not None else examples
    rows = list(query.order_by("id")[: size + 1])
    more = len(rows) > size
    rows = rows[:size]
    return ExamplePage(
        rows,
        next_after=rows[-1].id if more else None,
        previous_before=(rows[0].id if rows else after + 1) if after is not None else None,
    )


def example_status_counts(*, datasets: list[Dataset]) -> dict[int, dict[str, int]]:
    """{dataset id: {status: count, ..., "total": n, "eval": n, "train": n}}: one grouped query over the
    (dataset, status) index, and one over the (dataset, split) index for the evaluation set (usually small)."""
    names = [*ExampleStatus.values, "total", *ExampleSplit.values]
    counts: dict[int, dict[str, int]] = {d.pk: dict.fromkeys(names, 0) for d in datasets}
    chosen = Example.objects.filter(dataset_id__in=list(counts))
    rows = chosen.values_list("dataset_id", "status").annotate(n=Count("id")).order_by()
    for dataset_id, status, n in rows:
        counts[dataset_id][status] = n
        counts[dataset_id]["total"] += n
    in_eval = chosen.filter(split=ExampleSplit.EVAL).values_list("dataset_id").annotate(n=Count("id")).order_by()
    for dataset_id, n in in_eval:
        counts[dataset_id][ExampleSplit.EVAL] = n
    for row in counts.values():
        row[ExampleSplit.TRAIN] = row["total"] - row[ExampleSplit.EVAL]
    return counts


def status_counts_key(dataset_id: int) -> str:
    """Where a dataset's counts by status are cached (services forget it when they change the dataset's pairs)."""
    return f"instructory:status-counts:{dataset_id}"


def dataset_status_counts(*, datasets: list[Dataset]) -> dict[int, dict[str, Any]]:
    """{dataset id: {status: count, ..., "total": n, "as_of": unix time or None}} for the pages that show them.

    Exact for ordinary datasets (as_of None). Datasets of COUNTS_CACHE_MIN_PAIRS pairs or more are counted once and
    kept in the shared cache (as_of: when counted) until a service changes their pairs, from a web request, the API
    or a worker (dataset_counts_forget), or for COUNTS_CACHE_S seconds at most.
    """
    keys = {dataset.pk: status_counts_key(dataset.pk) for dataset in datasets}
    cached = cache.get_many(list(keys.values()))
    counts = {pk: cached[key] for pk, key in keys.items() if key in cached}
    missing = [dataset for dataset in datasets if dataset.pk not in counts]
    if missing:
        now = time.time()
        for pk, row in example_status_counts(datasets=missing).items():
            large = row["total"] >= settings.COUNTS_CACHE_MIN_PAIRS
            counts[pk] = {**row, "as_of": now if large else None}
            if large:
                cache.set(keys[pk], counts[pk], settings.COUNTS_CACHE_S)
    return counts


def member_list(*, workspace: Workspace) -> QuerySet[Membership]:
    return workspace.memberships.select_related("user").order_by("user__username")


def example_lease_active(*, example: Example) -> ExampleLease | None:
    """The unexpired queue claim on a pair, if any (the editor warns when it is someone else's)."""
    return ExampleLease.objects.filter(example=example, expires_at__gt=timezone.now()).select_related("user").first()


def example_neighbours(*, examples: QuerySet[Example], example: Example) -> tuple[int | None, int | None]:
    """The ids of the pairs before and after `example` in a (filtered) list, for previous/next links."""
    previous = examples.filter(id__lt=example.pk).order_by("-id").values_list("id", flat=True).first()
    following = examples.filter(id__gt=example.pk).order_by("id").values_list("id", flat=True).first()
    return previous, following


@dataclass(frozen=True)
class HistoryEntry:
    """One version of a pair as the history page shows it; `revision` is None for a creation with no record."""

    version: int
    action: str
    user: str
    created_at: datetime
    comment: str
    changes: dict[str, tuple[Any, Any]]
    revision: ExampleRevision | None


def example_history(*, example: Example) -> list[HistoryEntry]:
    """Every version of a pair, newest first; bulk imports record no 'create' revision, so one is made up."""
    entries = [
        HistoryEntry(
            version=revision.version,
            action=revision.get_action_display(),
            user=revision.user.get_username() if revision.user else "",
            created_at=revision.created_at,
            comment=revision.comment,
            changes={name: (revision.before.get(name), revision.after[name]) for name in revision.after},
            revision=revision,
        )
        for revision in revision_list(example=example)
    ]
    if not any(entry.version == 1 for entry in entries):
        creator = example.created_by.get_username() if example.created_by else ""
        entries.insert(
            0,
            HistoryEntry(
                version=1,
                action="Created",
                user=creator,
                created_at=example.created_at,
                comment=f"from {example.source}",
                changes={},
                revision=None,
            ),
        )
    return entries[::-1]


# Full-text search in a list ordered by id: PostgreSQL either walks the primary key, testing every row
# (quick for common words, seconds for rare ones), or collects the matches from the GIN index and sorts
# them (quick for rare words, slow for common ones). Its own choice goes wrong for rare words, so ask its
# estimate of the matches first and take the index path below this many (measured: bench/ui_bench.py).
FTS_INDEX_PATH_MAX_ROWS = 15_000


def example_filter_by_id(*, dataset: Dataset, search: str | None = None, **filters: Any) -> QuerySet[Example]:
    """`example_filter` for lists walked in id order (keyset pages, previous/next), planned for speed."""
    if not search or not search.strip() or connection.vendor != "postgresql":
        return example_filter(dataset=dataset, search=search, **filters)
    examples = example_filter(dataset=dataset, **filters)
    match = f"dataset_id = %s AND {PG_VECTOR} @@ plainto_tsquery('simple', %s)"
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (FORMAT JSON) SELECT 1 FROM datasets_app_example WHERE {match}", [dataset.pk, search])  # noqa: S608 - constant SQL
        plan = cursor.fetchone()[0]
    plan = json.loads(plan) if isinstance(plan, str) else plan
    if plan[0]["Plan"]["Plan Rows"] > FTS_INDEX_PATH_MAX_ROWS:
        return search_examples(examples, search)
    return examples.extra(  # noqa: S610
        where=[f"datasets_app_example.id = ANY(ARRAY(SELECT id FROM datasets_app_example WHERE {match}))"],  # noqa: S608
        params=[dataset.pk, search],
    )
