"""Errors the datasets services raise; views and the API turn them into responses."""

from typing import Any

from django.core.exceptions import ValidationError


class StaleVersion(Exception):
    """Someone saved the example after the caller loaded it."""

    def __init__(self, *, current: Any) -> None:
        super().__init__(f"example {current.pk} is at version {current.version}")
        self.current = current


class NotAllowed(Exception):
    """The user's role does not allow the action (HTTP 403)."""


class Conflict(ValidationError):
    """The request clashes with what is stored, e.g. a name already taken (HTTP 409); nothing was changed."""


class InUse(Conflict):
    """Other rows still use this one, so it cannot be deleted; the message says which and why."""


class NotAMember(Exception):
    """The user named is not a member of the workspace; answered exactly like a name nobody has."""


class DuplicateExample(Conflict):
    """The dataset already holds a pair with the same normalized content."""

    def __init__(self, *, existing: Any) -> None:
        super().__init__(f"the dataset already has this pair (example {existing.pk})", code="duplicate")
        self.existing = existing


class BulkInvalid(Exception):
    """Some items of a bulk request are invalid: {index: {field: [messages]}}."""

    def __init__(self, problems: dict[int, dict[str, list[str]]]) -> None:
        super().__init__(f"{len(problems)} invalid item(s)")
        self.problems = problems
