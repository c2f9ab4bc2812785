"""Errors the datasets services raise; views and the API turn them into responses."""

from typing import Any


class StaleVersion(Exception):
    """Someone saved the example after the caller loaded it."""

    def __init__(self, *, current: Any) -> None:
        super().__init__(f"example {current.pk} is at version {current.version}")
        self.current = current


class NotAllowed(Exception):
    """The user's role does not allow the action (HTTP 403)."""
