"""Staged imports on SQLite: pairs written in short committed batches into an id range no reader sees.

SQLite has one writer at a time, so an import in one transaction would lock every other writer out for as
long as it writes. Instead an import reserves a range of ids (`stage_open`), writes there in batches that
each commit within a fraction of a second (`stage_batch`), and makes all of it visible at once by deleting
its ImportStage row in its last commit (`stage_publish`, which the job's end joins). Readers skip every
staged range (the Example manager), so until then they see none of the new pairs, and search neither.

An import that fails deletes its pairs in short batches (`stage_discard`); one whose worker died is found by
`import_stages_sweep` (run by Celery beat): its job is no longer running, or, without a job, it has written
nothing for STAGE_QUIET.
"""

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from datasets_app.models import Dataset, Example, ImportStage, Job, JobStatus

logger = logging.getLogger(__name__)
DISCARD_BATCH = 5000  # ids deleted per transaction when a stage is thrown away
PAGE_CACHE_KIB = 64 * 1024  # the importing connection's page cache (SQLite's default: 2 MiB)
STAGE_QUIET = timedelta(minutes=10)  # a stage without a job that wrote nothing for this long is abandoned
TABLE = Example._meta.db_table


class ImportAbandoned(Exception):
    """The import's job ended while it ran (a sweep failed it), or its stage was discarded: nothing was imported."""


@transaction.atomic
def stage_open(*, dataset: Dataset, job: Job | None, count: int) -> ImportStage:
    """Reserve `count` ids after every id in use or handed out, and register them as staged: one short commit.

    Django makes SQLite tables AUTOINCREMENT, so moving `sqlite_sequence` past the range keeps every other
    writer's new pairs out of it.
    """
    with connection.cursor() as cursor:
        cursor.execute("SELECT seq FROM sqlite_sequence WHERE name = %s", [TABLE])
        sequence = cursor.fetchone()
        cursor.execute(f"SELECT MAX(id) FROM {TABLE}")  # noqa: S608 - the model's table name
        top = max(sequence[0] if sequence else 0, cursor.fetchone()[0] or 0)
        first, last = top + 1, top + count
        if sequence:
            cursor.execute("UPDATE sqlite_sequence SET seq = %s WHERE name = %s", [last, TABLE])
        else:
            cursor.execute("INSERT INTO sqlite_sequence (name, seq) VALUES (%s, %s)", [TABLE, last])
    return ImportStage.objects.create(dataset=dataset, job=job, first_id=first, last_id=last)


@contextmanager
def import_page_cache() -> Iterator[None]:
    """A larger page cache on this connection while it imports: the index pages a batch changes are mostly the
    next batch's too, and with SQLite's 2 MiB they would be read back and written again at every commit (about
    7% more CPU time importing 100,000 pairs into a table that already held as many)."""
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA cache_size")
        previous = cursor.fetchone()[0]
        cursor.execute(f"PRAGMA cache_size = -{PAGE_CACHE_KIB}")
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f"PRAGMA cache_size = {int(previous)}")


@contextmanager
def stage_batch(stage: ImportStage, job: Job | None) -> Iterator[None]:
    """One short transaction of the import's writing; ImportAbandoned when the stage or the job ended meanwhile.

    The check is in the same transaction as the writes, so no pair can land in a range already being discarded.
    """
    with transaction.atomic():
        _still_ours(stage, job)
        yield


def stage_publish(stage: ImportStage, job: Job | None) -> None:
    """Make the staged pairs visible: delete the stage row. Call inside the transaction that ends the job."""
    _still_ours(stage, job)
    ImportStage.objects.filter(pk=stage.pk).delete()


def _still_ours(stage: ImportStage, job: Job | None) -> None:
    touched = ImportStage.objects.filter(pk=stage.pk, discarding=False).update(updated_at=timezone.now())
    if not touched:
        raise ImportAbandoned("the import was stopped and its pairs discarded")
    if job is not None and not Job.objects.filter(pk=job.pk, status=JobStatus.RUNNING).exists():
        raise ImportAbandoned("the import's job ended while it ran (the sweeper failed it)")


def stage_discard(stage_id: int) -> int:
    """Delete a stage's pairs in short batches, then the stage; returns how many pairs. Safe to run twice at once."""
    if not ImportStage.objects.filter(pk=stage_id).update(discarding=True, updated_at=timezone.now()):
        return 0
    stage = ImportStage.objects.filter(pk=stage_id).first()
    if stage is None:
        return 0  # another discard (the sweep, or the import itself) finished first
    deleted = 0
    for start in range(stage.first_id, stage.last_id + 1, DISCARD_BATCH):
        with transaction.atomic(), connection.cursor() as cursor:
            end = min(start + DISCARD_BATCH - 1, stage.last_id)
            cursor.execute(f"DELETE FROM {TABLE} WHERE id BETWEEN %s AND %s", [start, end])  # noqa: S608
            deleted += cursor.rowcount
    ImportStage.objects.filter(pk=stage_id).delete()
    return deleted


def import_stages_sweep(*, quiet_for: timedelta = STAGE_QUIET) -> int:
    """Discard the stages of imports that died (worker killed, web process gone); returns how many stages."""
    quiet = timezone.now() - quiet_for
    dead = ImportStage.objects.filter(
        Q(discarding=True)
        | (Q(job__isnull=False) & ~Q(job__status=JobStatus.RUNNING))
        | Q(job__isnull=True, updated_at__lt=quiet)
    )
    stage_ids = list(dead.values_list("id", flat=True))
    for stage_id in stage_ids:
        pairs = stage_discard(stage_id)
        logger.warning("discarded import stage %s of a dead import (%s pairs)", stage_id, pairs)
    return len(stage_ids)
