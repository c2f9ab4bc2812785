"""What the HTML views share: role errors as 403, the list filters, safe redirects, cached counts."""

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import wraps
from typing import Any
from urllib.parse import urlencode

from django.core.cache import cache
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, QueryDict
from django.utils.http import url_has_allowed_host_and_scheme

from datasets_app.curation import selectors
from datasets_app.errors import NotAllowed
from datasets_app.models import Dataset, ExampleStatus

# Counting a million pairs by status takes tens of milliseconds; for datasets that large the counts are
# kept for a short while (per process) instead of being counted on every page view.
LARGE_DATASET = 100_000
COUNTS_MAX_AGE_S = 30
MAX_ID_DIGITS = 18


def role_errors_are_403(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """A service's NotAllowed becomes Django's 403 page: roles are enforced on the server, not by hiding buttons."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        try:
            return view(request, *args, **kwargs)
        except NotAllowed as error:
            raise PermissionDenied(str(error)) from error

    return wrapper


def is_htmx(request: HttpRequest) -> bool:
    return request.headers.get("HX-Request") == "true"


def parse_id(value: str | None) -> int | None:
    """A row id from a query string, or None for anything else (a huge number is not a database error)."""
    if value and value.isdigit() and len(value) <= MAX_ID_DIGITS:
        return int(value)
    return None


def safe_next(request: HttpRequest, default: str) -> str:
    """The `next` the form carried if it points into this site, else `default`."""
    target = request.POST.get("next") or request.GET.get("next") or ""
    if target and url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}, require_https=False):
        return target
    return default


@dataclass(frozen=True)
class ListFilters:
    """The filters of a dataset's list; the editor carries them too, so previous/next follow the same list."""

    q: str = ""
    status: str = ""
    tag: str = ""
    author: str = ""
    source: str = ""
    problems: str = ""  # "1": only pairs the lint found problems in

    @classmethod
    def from_query(cls, query: QueryDict) -> "ListFilters":
        values = {name: (query.get(name) or "").strip()[:200] for name in ("q", "status", "tag", "author", "source")}
        if values["status"] not in ExampleStatus.values:
            values["status"] = ""
        problems = "1" if query.get("problems") in ("1", "on") else ""
        return cls(**values, problems=problems)

    def selector_kwargs(self) -> dict[str, str | bool | None]:
        return {
            "search": self.q or None,
            "status": self.status or None,
            "tag": self.tag or None,
            "author": self.author or None,
            "source": self.source or None,
            "with_problems": bool(self.problems),
        }

    @property
    def active(self) -> bool:
        return any(asdict(self).values())

    def query(self, **extra: object) -> str:
        """These filters (plus `extra`) as a query string without the leading '?'; empty values left out."""
        values = {**asdict(self), **extra}
        return urlencode({name: value for name, value in values.items() if value not in ("", None)})


def status_counts(datasets: list[Dataset], *, fresh: bool = False) -> dict[int, dict[str, Any]]:
    """Counts by status per dataset; exact for ordinary datasets, up to COUNTS_MAX_AGE_S old for huge ones."""
    keys = {dataset.pk: f"instructory:status-counts:{dataset.pk}" for dataset in datasets}
    cached = {} if fresh else cache.get_many(list(keys.values()))
    counts = {pk: cached[key] for pk, key in keys.items() if key in cached}
    missing = [dataset for dataset in datasets if dataset.pk not in counts]
    if missing:
        now = time.time()
        for pk, row in selectors.example_status_counts(datasets=missing).items():
            row = {**row, "as_of": now if row["total"] >= LARGE_DATASET else None}
            counts[pk] = row
            if row["as_of"] is not None:
                cache.set(keys[pk], row, COUNTS_MAX_AGE_S)
    return counts


def forget_counts(dataset: Dataset) -> None:
    """After a change made here, count this dataset afresh on the next page view."""
    cache.delete(f"instructory:status-counts:{dataset.pk}")
