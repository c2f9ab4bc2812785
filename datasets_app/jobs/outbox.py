"""The outbox: the database row is the truth, the broker only carries the news.

A row that a Celery task executes (a job, a training run, a playground request) is created `queued`, and its
task is sent once that transaction commits. A send that fails (the broker is down) is logged, never raised: the
request still answers normally. A periodic dispatcher sends again every queued row whose send failed or never
happened, and, with an interval that doubles, every row sent but still queued past a deadline (the broker may
have lost the message). The task's claim (nothing to do unless the row is still queued) makes a second delivery
harmless. The rows need `status`, `created_at`, `dispatched_at`, `dispatch_count` (the `Dispatched` fields),
and, to record a row nothing can run, `error` and `finished_at`. Nothing here knows a feature.
"""

import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from celery import Task
from django.conf import settings
from django.db import models, transaction
from django.db.models import F
from django.utils import timezone
from kombu.utils.imports import symbol_by_name

logger = logging.getLogger(__name__)

QUEUED = "queued"
# A row younger than this may still have its first send in flight (its request's on_commit): not sent again yet.
UNSENT_GRACE = timedelta(seconds=5)

TaskOf = str | Callable[[Any], str]


class UnknownTask(Exception):
    """The row names a task this code does not have."""


def resolve_task(name: str) -> Task:
    """The task object of a task name; Celery names a task by its module path, which is importable."""
    try:
        task = symbol_by_name(name)
    except (ImportError, AttributeError, ValueError) as error:
        raise UnknownTask(name) from error
    if not callable(getattr(task, "apply_async", None)):
        raise UnknownTask(name)
    return task


def dispatch(row: models.Model, task: str) -> bool:
    """Send the row's task now; True when the broker took it. Never raises: a failed send waits for the dispatcher.

    The task goes with its own queue and no publish retries (the dispatcher is the retry), so a dead broker
    costs the caller about BROKER_TIMEOUT_S at most.
    """
    label = f"{row._meta.label_lower} {row.pk}"
    try:
        resolve_task(task).apply_async(args=[row.pk], retry=False)
    except UnknownTask:
        logger.error("%s names no task this code has (%r); it cannot be sent", label, task)
        return False
    except Exception as error:
        logger.warning(
            "could not send %s to the broker (%s: %s); the dispatcher will send it", label, type(error).__name__, error
        )
        return False
    type(row)._default_manager.filter(pk=row.pk, status=QUEUED).update(
        dispatched_at=timezone.now(), dispatch_count=F("dispatch_count") + 1
    )
    return True


def dispatch_on_commit(row: models.Model, task: str) -> None:
    """Send the row's task once the current transaction commits (its worker must find the row)."""
    transaction.on_commit(lambda: dispatch(row, task))


def resend_after(dispatch_count: int) -> timedelta:
    """How long a row sent `dispatch_count` times may stay queued before it is sent again: the deadline, doubling."""
    base, cap = settings.DISPATCH_DEADLINE_S, settings.DISPATCH_DEADLINE_MAX_S
    return timedelta(seconds=min(base * 2 ** min(max(dispatch_count - 1, 0), 30), cap))


def due(model: type[models.Model], *, now: datetime | None = None) -> list[models.Model]:
    """The queued rows to send now: never sent (past a short grace), then sent but still queued past their deadline."""
    now = now or timezone.now()
    queued = model._default_manager.filter(status=QUEUED)
    unsent = queued.filter(dispatched_at__isnull=True, created_at__lt=now - UNSENT_GRACE).order_by("created_at", "pk")
    sent = queued.filter(dispatched_at__lt=now - resend_after(1)).order_by("dispatched_at", "pk")
    return [*unsent, *(row for row in sent if row.dispatched_at < now - resend_after(row.dispatch_count))]


def dispatch_due(model: type[models.Model], task: TaskOf, *, now: datetime | None = None) -> int:
    """Send every due row of `model` (`task`: the task name, or a function of the row giving it); returns how many.

    The first failed send ends the pass: the broker is down, and the rest waits for the next one. A row whose
    task does not exist is failed, so it is not left queued with nothing behind it.
    """
    sent = 0
    for row in due(model, now=now):
        name = task(row) if callable(task) else task
        try:
            resolve_task(name)
        except UnknownTask:
            _fail_unrunnable(row, name)
            continue
        if not dispatch(row, name):
            break
        sent += 1
    return sent


def _fail_unrunnable(row: models.Model, task: str) -> None:
    logger.error("%s %s names no task this code has (%r); it is failed", row._meta.label_lower, row.pk, task)
    now = timezone.now()
    type(row)._default_manager.filter(pk=row.pk, status=QUEUED).update(
        status="failed",
        finished_at=now,
        updated_at=now,
        error=f"nothing can run this: its task {task!r} does not exist in this version; start it again",
    )


def claim_queued(model: type[models.Model], pk: int, *, queued: str, running: str) -> Any | None:
    """The queued row of `model`, now marked running; None when another delivery of its task already took it."""
    with transaction.atomic():
        row = model.objects.select_for_update().filter(pk=pk).first()
        if row is None or row.status != queued:
            return None  # a redelivered task finds the row taken (or finished): nothing to do
        row.status, row.started_at = running, timezone.now()
        row.save(update_fields=["status", "started_at", "updated_at"])
        return row


def finish_running(row: models.Model, *, running: str, status: str, **fields: Any) -> bool:
    """Record the outcome, only on a row still running: one the sweeper failed meanwhile stays failed."""
    now = timezone.now()
    still_running = type(row).objects.filter(pk=row.pk, status=running)
    return bool(still_running.update(status=status, finished_at=now, updated_at=now, **fields))
