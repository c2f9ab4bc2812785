"""What the HTML views share: role errors as 403, the list filters, safe redirects."""

from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import wraps
from typing import Any
from urllib.parse import urlencode

from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, QueryDict
from django.utils.http import url_has_allowed_host_and_scheme

from datasets_app.errors import NotAllowed
from datasets_app.models import ExampleSplit, ExampleStatus

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
    split: str = ""  # "train" or "eval": one set of the dataset

    @classmethod
    def from_query(cls, query: QueryDict) -> "ListFilters":
        names = ("q", "status", "tag", "author", "source", "split")
        values = {name: (query.get(name) or "").strip()[:200] for name in names}
        if values["status"] not in ExampleStatus.values:
            values["status"] = ""
        if values["split"] not in ExampleSplit.values:
            values["split"] = ""
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
            "split": self.split or None,
        }

    @property
    def active(self) -> bool:
        return any(asdict(self).values())

    def query(self, **extra: object) -> str:
        """These filters (plus `extra`) as a query string without the leading '?'; empty values left out."""
        values = {**asdict(self), **extra}
        return urlencode({name: value for name, value in values.items() if value not in ("", None)})
