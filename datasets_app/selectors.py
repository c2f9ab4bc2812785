"""Reads scoped to what the user may see."""

from datetime import datetime

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import Count, Q, QuerySet
from django.shortcuts import get_object_or_404

from datasets_app.errors import NotAllowed
from datasets_app.models import Dataset, Example, ExampleRevision, ExampleStatus, Job, Membership, Role, Workspace
from datasets_app.search import search_examples, with_tag

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
    """Datasets with example counts by status, for the home page."""
    counts = {f"n_{status}": Count("examples", filter=Q(examples__status=status)) for status in ExampleStatus.values}
    return dataset_list(user=user).annotate(n_total=Count("examples"), **counts)


def dataset_get(*, user: User, pk: int) -> Dataset:
    """A dataset the user can see, else 404 (outsiders cannot tell it exists)."""
    return get_object_or_404(dataset_list(user=user), pk=pk)


def example_get(*, user: User, pk: int) -> Example:
    visible = Example.objects.filter(dataset__workspace__in=workspace_list(user=user))
    return get_object_or_404(visible.select_related("dataset__workspace"), pk=pk)


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
) -> QuerySet[Example]:
    """A dataset's pairs narrowed by the filters the list views and the API offer; `source` ending in * is a prefix."""
    examples = example_list(dataset=dataset, status=status)
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
    return examples


def job_get(*, user: User, pk: int) -> Job:
    visible = Job.objects.filter(dataset__workspace__in=workspace_list(user=user))
    return get_object_or_404(visible.select_related("dataset"), pk=pk)
