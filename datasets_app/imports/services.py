"""Importing dataset files: all or nothing for readers, streamed, written in batches; large uploads as a job.

The file is read twice, a check (every problem, and how many records) then the write, except on PostgreSQL
without a job, where one pass does both (a problem rolls the write back). Readers see none of the
new pairs until one final commit, which also ends the import's job. On SQLite the write is a series of short
commits into ids no reader sees (staging.py), so other writers wait a fraction of a second at most; on
PostgreSQL it is one transaction (MVCC keeps it from readers and blocks no writer), after which a worker
refreshes the planner's statistics, so the dataset's pages are quick at once.
"""

import logging
import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, BinaryIO

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import UploadedFile
from django.db import DatabaseError, connection, transaction

from datasets_app.curation.limits import import_read_limits, pair_text_errors
from datasets_app.curation.rows import PairBuilder, db_rows, example_columns
from datasets_app.curation.selectors import role_require
from datasets_app.curation.services import dataset_counts_forget
from datasets_app.formats import (
    IMPORT_FORMATS,
    PREFERENCE_FORMATS,
    Problem,
    Record,
    UnknownFormat,
    detect_format,
    kind_mismatch,
    read_records,
)
from datasets_app.imports.staging import (
    ImportAbandoned,
    import_page_cache,
    stage_batch,
    stage_discard,
    stage_open,
    stage_publish,
)
from datasets_app.imports.uploads import safe_filename
from datasets_app.jobs.services import job_beating, job_claim, job_create, job_file_discard, job_finish, job_progress
from datasets_app.models import Dataset, Example, ExampleSplit, ExampleStatus, ImportStage, Job, JobStatus, Role

logger = logging.getLogger(__name__)
MAX_PROBLEMS = 100
BATCH_SIZE = 5000  # rows a batch: about a quarter of a second of writing on SQLite
WRITE_TARGET_S = 1.0  # on SQLite, about the longest one write of an import holds the lock other writers wait on
MIN_WRITE_ROWS = 200
ANALYZE_MIN_ROWS = 1000  # an import at least this large refreshes the planner's statistics
TABLE = Example._meta.db_table
Progress = Callable[[str, float], None]


@dataclass(frozen=True)
class ImportOutcome:
    created: int
    skipped_duplicates: int
    format: str

    def as_dict(self) -> dict[str, int | str]:
        return {"created": self.created, "skipped_duplicates": self.skipped_duplicates, "format": self.format}


class ImportRejected(Exception):
    """The file has problems; nothing was written."""

    def __init__(self, problems: list[dict], *, more: bool = False) -> None:
        super().__init__(f"{len(problems)}{'+' if more else ''} problem(s) in the file")
        self.problems = problems
        self.more = more


def resolve_format(stream: BinaryIO, fmt: str | None, filename: str, *, preference: bool = False) -> str:
    """The format asked for, or the one detected from the first 64 KiB; refused when it does not fit the dataset's
    kind (`preference`: a preference dataset's pairs have a rejected answer, which only its formats hold)."""
    if fmt:
        known = (*IMPORT_FORMATS, "csv", *PREFERENCE_FORMATS)
        if fmt not in known:
            expected = PREFERENCE_FORMATS if preference else IMPORT_FORMATS
            raise ImportRejected(
                [{"field": "format", "message": f"unknown format {fmt!r}; expected one of {', '.join(expected)}"}]
            )
    else:
        head = stream.read(64 * 1024)
        stream.seek(0)
        if not head.strip():
            raise ImportRejected([{"field": "", "message": "the file is empty"}])
        try:
            fmt = detect_format(head, filename)
        except UnknownFormat as error:
            raise ImportRejected([{"field": "format", "message": str(error)}]) from error
    mismatch = kind_mismatch(fmt, preference=preference)
    if mismatch is not None:
        raise ImportRejected([{"field": "format", "message": mismatch}])
    return fmt


def dataset_import(
    *,
    dataset: Dataset,
    user: AbstractBaseUser | None,
    stream: BinaryIO,
    filename: str,
    fmt: str | None = None,
    on_duplicate: str = "skip",
    status: str = ExampleStatus.DRAFT,
    split: str = ExampleSplit.TRAIN,
    progress: Progress | None = None,
    job: Job | None = None,
    source: str = "",
) -> ImportOutcome:
    """Import every record of a file, or nothing: any problem rejects the whole file (ImportRejected). The pairs go
    into the training set, or with `split="eval"` into the dataset's evaluation set; their source is `source`, else
    `import:<filename>`.

    With a `job`, the commit that makes the pairs visible also ends the job as succeeded; when the job had
    already ended (the sweeper failed it), nothing becomes visible and ImportAbandoned is raised.
    """
    if user is not None:
        role_require(
            user=user,
            workspace=dataset.workspace,
            role=Role.LEAD if status in ("approved", "rejected") else Role.ANNOTATOR,
        )
    preference = dataset.is_preference
    fmt = resolve_format(stream, fmt, filename, preference=preference)
    report = progress or _no_progress
    source = (source or f"import:{filename}")[:255]
    count = 0
    if progress is not None or connection.vendor == "sqlite":  # a job shows its check; SQLite reserves `count` ids
        count = _check(_read(stream, fmt, filename, preference), stream, report)
        stream.seek(0)
        report("writing", 0.5)
    rows = _Rows(PairBuilder(dataset=dataset, user=user), status=status, source=source, split=split)
    built = rows.from_items(_read(stream, fmt, filename, preference))
    dedupe = on_duplicate != "keep"
    if connection.vendor == "sqlite":
        batches = _batches(db_rows(built, with_id=True), rows)
        outcome = _write_staged(
            dataset=dataset, job=job, batches=batches, count=count, dedupe=dedupe, fmt=fmt, progress=report
        )
    else:
        outcome = _write_in_one_transaction(dataset=dataset, job=job, rows=rows, built=built, dedupe=dedupe, fmt=fmt)
    if outcome.created >= ANALYZE_MIN_ROWS and connection.vendor == "postgresql":
        if job is not None:
            refresh_statistics()  # on the worker, after the job's end: no one waits for it
        else:
            transaction.on_commit(_queue_statistics)  # a web request does not wait for ANALYZE: a worker does it
    dataset_counts_forget(dataset_id=dataset.pk)
    return outcome


def _read(stream: BinaryIO, fmt: str, filename: str, preference: bool) -> Iterator[Record | Problem]:
    """The file's records within the memory bounds, each over a text cap turned into its problems
    (e.g. line 5, field response: "at most 100000 characters (got 250000)")."""
    for item in read_records(stream, fmt, filename, import_read_limits(), preference=preference):
        if isinstance(item, Problem):
            yield item
            continue
        errors = pair_text_errors(
            prompt=item.prompt, response=item.response, system_prompt=item.system, history=item.history,
            tags=item.tags, system_name="system", rejected=item.rejected,
        )  # fmt: skip
        if errors:
            yield from (Problem(item.position, item.unit, field, message) for field, message in errors.items())
        else:
            yield item


def _queue_statistics() -> None:
    from datasets_app.imports.tasks import import_statistics_task

    try:
        import_statistics_task.delay()
    except Exception:  # the broker is down: autovacuum refreshes the statistics later on its own
        logger.warning("could not queue the statistics refresh after an import", exc_info=True)


def _no_progress(phase: str, fraction: float) -> None:
    pass


def _write_staged(
    *, dataset: Dataset, job: Job | None, batches: Iterator[list[list]], count: int, dedupe: bool, fmt: str,
    progress: Progress,
) -> ImportOutcome:  # fmt: skip
    """SQLite: short commits into a staged id range, then one quick commit that shows them (and ends the job)."""
    stage = stage_open(dataset=dataset, job=job, count=count)
    try:
        with import_page_cache():
            outcome = _write_batches(dataset=dataset, job=job, stage=stage, batches=batches, count=count,
                                     dedupe=dedupe, fmt=fmt, progress=progress)  # fmt: skip
        with transaction.atomic():
            stage_publish(stage, job)
            _end_job(job, outcome)
        return outcome
    except BaseException:
        stage_discard(stage.pk)
        raise


def _write_batches(
    *, dataset: Dataset, job: Job | None, stage: ImportStage, batches: Iterator[list[list]], count: int, dedupe: bool,
    fmt: str, progress: Progress,
) -> ImportOutcome:  # fmt: skip
    written = skipped = 0
    next_id = stage.first_id
    pace = WritePace()
    for batch in batches:
        if next_id + len(batch) - 1 > stage.last_id:
            raise ImportRejected([{"field": "", "message": "the file changed while it was being imported"}])
        for row in batch:
            row[0], next_id = next_id, next_id + 1
        for piece in pace.pieces(batch):
            started = time.monotonic()
            with stage_batch(stage, job), connection.cursor() as cursor:
                _insert(cursor, piece)
                if dedupe:
                    skipped += _drop_duplicates(cursor, dataset.pk, piece[0][0], piece[-1][0], stage=stage)
            pace.took(time.monotonic() - started, len(piece))
            written += len(piece)
            progress("writing", 0.5 + 0.5 * min(written / count, 1.0))
    return ImportOutcome(created=written - skipped, skipped_duplicates=skipped, format=fmt)


class WritePace:
    """How many rows one transaction of a staged import writes: a write slower than WRITE_TARGET_S (a loaded
    machine, a slow disk) halves the next ones, fast writes grow them back to BATCH_SIZE, so another writer waits
    about WRITE_TARGET_S at most whatever the load."""

    def __init__(self) -> None:
        self.size = BATCH_SIZE

    def pieces(self, batch: list[list]) -> Iterator[list[list]]:
        """The batch in pieces of about equal length, none longer than the size: no sliver of a piece at the end."""
        start = 0
        while start < len(batch):
            left = len(batch) - start
            length = math.ceil(left / math.ceil(left / self.size))
            yield batch[start : start + length]
            start += length

    def took(self, seconds: float, rows: int) -> None:
        if seconds > WRITE_TARGET_S:
            self.size = max(MIN_WRITE_ROWS, min(self.size, int(rows * WRITE_TARGET_S / seconds)))
        elif seconds < WRITE_TARGET_S / 2:
            self.size = min(BATCH_SIZE, self.size * 2)


def _write_in_one_transaction(
    *, dataset: Dataset, job: Job | None, rows: "_Rows", built: Iterator[dict], dedupe: bool, fmt: str
) -> ImportOutcome:
    """PostgreSQL: one COPY in one transaction, which readers cannot see and which blocks no other writer.

    One COPY streams: the database inserts while the next rows are built. Nothing here writes the job row
    before the end: a row lock held that long would stall its heartbeat.
    """
    sequence = f"pg_get_serial_sequence('{TABLE}', 'id')"
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"SELECT COALESCE(MAX(id), 0) FROM {TABLE}")  # noqa: S608 - the model's table name
        before = cursor.fetchone()[0]  # every id the COPY takes from the sequence is above it
        columns = ", ".join(example_columns())
        written = 0
        with cursor.cursor.copy(f"COPY {TABLE} ({columns}) FROM STDIN") as copy:
            for row in db_rows(built):
                copy.write_row(row)
                written += 1
        _refuse_problems(rows)
        skipped = 0
        if dedupe and written:
            # This transaction's rows: ids from before..the last this session took, inserted by this transaction
            # (xmin); rows other writers committed meanwhile may have ids in between.
            cursor.execute(f"SELECT currval({sequence})")
            last = cursor.fetchone()[0]
            cursor.execute(f"SELECT xmin FROM {TABLE} WHERE id = %s", [last])  # noqa: S608
            xmin = cursor.fetchone()[0]
            with _no_nested_loops(cursor):
                skipped = _drop_duplicates(cursor, dataset.pk, before + 1, last, xmin=xmin)
        outcome = ImportOutcome(created=written - skipped, skipped_duplicates=skipped, format=fmt)
        _end_job(job, outcome)
    return outcome


@contextmanager
def _no_nested_loops(cursor: Any) -> Iterator[None]:
    """Statistics cannot count rows not yet committed (an ANALYZE by autovacuum meanwhile finds the table nearly
    empty), and with such estimates PostgreSQL joins the new rows to the dataset's in a nested loop: quadratic,
    minutes for 100,000 rows. A hash join is linear whatever the estimates."""
    cursor.execute("SELECT current_setting('enable_nestloop')")
    previous = cursor.fetchone()[0]
    cursor.execute("SELECT set_config('enable_nestloop', 'off', true)")  # for this transaction only
    yield
    cursor.execute("SELECT set_config('enable_nestloop', %s, true)", [previous])  # (a rollback undoes it too)


def _end_job(job: Job | None, outcome: ImportOutcome) -> None:
    if job is None:
        return
    ended = job_finish(job, status=JobStatus.SUCCEEDED, result=outcome.as_dict(), progress=1.0, phase="done")
    if not ended:
        raise ImportAbandoned("the import's job ended while it ran (the sweeper failed it)")


def _insert(cursor: Any, batch: list[list]) -> None:
    """One batch of database rows, ids first (SQLite); the columns come from the model."""
    columns = example_columns(with_id=True)
    placeholders = ", ".join(["%s"] * len(columns))
    cursor.executemany(f"INSERT INTO {TABLE} ({', '.join(columns)}) VALUES ({placeholders})", batch)  # noqa: S608


def _drop_duplicates(
    cursor: Any, dataset_id: int, first: int, last: int, *, stage: ImportStage | None = None, xmin: Any = None
) -> int:
    """Delete the new rows first..last whose content the dataset already had, or an earlier row of the file had.

    The database does it over the (dataset, content_hash) index, so memory does not grow with the file. On
    SQLite, rows of another import still staged do not count (that import may yet fail); on PostgreSQL, only
    the rows this transaction inserted (`xmin`) are candidates.
    """
    where, params = "", [first, last]
    if xmin is not None:
        where, params = f" AND {TABLE}.xmin = %s", [*params, xmin]
    others = ""
    if stage is not None:
        others = (
            " AND NOT EXISTS (SELECT 1 FROM datasets_app_importstage AS other WHERE other.id <> %s"
            " AND earlier.id BETWEEN other.first_id AND other.last_id)"
        )
    cursor.execute(
        f"DELETE FROM {TABLE} WHERE id BETWEEN %s AND %s{where} AND EXISTS ("  # noqa: S608 - the model's table name
        f" SELECT 1 FROM {TABLE} AS earlier WHERE earlier.dataset_id = %s"
        f" AND earlier.content_hash = {TABLE}.content_hash AND earlier.id < {TABLE}.id{others})",
        [*params, dataset_id, *([stage.pk] if stage is not None else [])],
    )
    return cursor.rowcount


def refresh_statistics() -> None:
    """Refresh PostgreSQL's statistics of the pairs table after a bulk write, so plans fit the new rows at once
    (autovacuum would, a minute or more later). ANALYZE reads a sample (about a second, most of it for the
    full-text index's word statistics) and blocks no reader or writer.

    Not on SQLite: its plans for the dataset page, search and filters were the same with and without
    statistics (measured at 200,000 pairs), and ANALYZE there holds the write lock while it reads.
    """
    if connection.vendor != "postgresql":
        return
    try:
        with connection.cursor() as cursor:
            cursor.execute(f"ANALYZE {TABLE}")
    except DatabaseError:
        logger.warning("could not refresh the statistics of %s; autovacuum catches up on its own", TABLE)


def _check(items: Iterator[Record | Problem], stream: BinaryIO, progress: Progress) -> int:
    """Every problem the file's format finds (ImportRejected), else how many records it has; writes nothing.

    What the row builder refuses (curation.rows.pair_errors) is found while writing, and rejects the file too.
    """
    size = max(_size(stream), 1)
    problems: list[dict] = []
    count = 0
    for item in items:
        if isinstance(item, Problem):
            problems.append(item.as_dict())
        else:
            count += 1
            if count % BATCH_SIZE == 0:
                progress("checking", 0.5 * min(stream.tell() / size, 1.0))
        if len(problems) > MAX_PROBLEMS:
            break
    if problems:
        raise ImportRejected(problems[:MAX_PROBLEMS], more=len(problems) > MAX_PROBLEMS)
    return count


def _as_problems(record: Record, errors: dict[str, list[str]]) -> list[dict]:
    return [
        {"record": record.position, "field": field, "message": message}
        for field, messages in errors.items()
        for message in messages
    ]


def _size(stream: BinaryIO) -> int:
    position = stream.tell()
    size = stream.seek(0, 2)
    stream.seek(position)
    return size


class _Rows:
    """Turns records into built rows (curation.rows), collecting problems."""

    def __init__(self, builder: PairBuilder, *, status: str, source: str, split: str) -> None:
        self.builder, self.status, self.source, self.split = builder, status, source, split
        self.problems: list[dict] = []

    def from_items(self, items: Iterator[Record | Problem]) -> Iterator[dict]:
        """Built rows, with an "id" for the writer to fill in."""
        for item in items:
            if isinstance(item, Problem):
                self.problems.append(item.as_dict())
            elif not self.problems:  # once the file is rejected, keep reading only to list more problems
                try:
                    row = self.builder.row(
                        prompt=item.prompt, response=item.response, system_prompt=item.system, history=item.history,
                        tags=item.tags, status=self.status, source=self.source, split=self.split,
                        rejected=item.rejected,
                    )  # fmt: skip
                except ValidationError as error:
                    self.problems += _as_problems(item, error.message_dict)
                else:
                    row["id"] = None
                    yield row
            if len(self.problems) > MAX_PROBLEMS:
                return


def _batches(rows: Iterator[list], source: _Rows) -> Iterator[list[list]]:
    """Database rows (id first) a batch at a time; a problem rejects the file before its batch is written."""
    batch = []
    for row in rows:
        batch.append(row)
        if len(batch) == BATCH_SIZE:
            _refuse_problems(source)
            yield batch
            batch = []
    _refuse_problems(source)
    if batch:
        yield batch


def _refuse_problems(source: _Rows) -> None:
    if source.problems:
        raise ImportRejected(source.problems[:MAX_PROBLEMS], more=len(source.problems) > MAX_PROBLEMS)


# --- uploads: imported now, or by a worker as a job when large


@transaction.atomic
def import_job_create(
    *,
    dataset: Dataset,
    user: AbstractBaseUser,
    upload: UploadedFile,
    fmt: str | None,
    on_duplicate: str,
    status: str = ExampleStatus.DRAFT,
    split: str = ExampleSplit.TRAIN,
) -> Job:
    """Store the upload and queue its import; the worker that runs it may be on another machine."""
    role_require(
        user=user, workspace=dataset.workspace, role=Role.LEAD if status in ("approved", "rejected") else Role.ANNOTATOR
    )
    fmt = resolve_format(upload, fmt, upload.name or "", preference=dataset.is_preference)
    from datasets_app.imports.tasks import import_job_task

    return job_create(
        kind=Job.Kind.IMPORT,
        dataset=dataset,
        user=user,
        task=import_job_task.name,
        params={"filename": upload.name, "format": fmt, "on_duplicate": on_duplicate, "status": status, "split": split},
        upload=upload,
    )


def import_job_run(*, job_id: int) -> None:
    """Run a queued import once; progress goes to the job row, and the commit that shows the pairs ends the job."""
    job = job_claim(job_id)
    if job is None:
        return

    params = job.params
    with job_beating(job):
        try:
            with job.file.open("rb") as stream:
                dataset_import(
                    dataset=job.dataset, user=job.created_by, stream=stream, filename=params["filename"], fmt=params["format"],
                    on_duplicate=params["on_duplicate"], status=params["status"],
                    split=params.get("split", ExampleSplit.TRAIN),  # jobs queued before there were evaluation sets
                    progress=lambda phase, fraction: job_progress(job, phase, fraction), job=job,
                )  # fmt: skip
        except ImportRejected as rejected:
            job_finish(job, status=JobStatus.FAILED, problems=rejected.problems, error=str(rejected), phase="rejected")
        except ImportAbandoned:
            logger.warning("import job %s ended while it ran; its pairs were discarded", job.pk)
        except Exception as error:
            logger.exception("import job %s failed", job.pk)
            job_finish(job, status=JobStatus.FAILED, error=f"the import failed: {error}", phase="failed")
        finally:
            job_file_discard(job)


def import_upload(
    *,
    dataset: Dataset,
    user: AbstractBaseUser,
    upload: UploadedFile,
    fmt: str | None,
    on_duplicate: str,
    status: str,
    split: str = ExampleSplit.TRAIN,
) -> Job | ImportOutcome:
    """Import an uploaded file now, or queue it for a worker when it is over IMPORT_ASYNC_BYTES (a Job)."""
    upload.name = safe_filename(upload.name or "", "upload")
    if upload.size > settings.IMPORT_ASYNC_BYTES:
        return import_job_create(
            dataset=dataset, user=user, upload=upload, fmt=fmt, on_duplicate=on_duplicate, status=status, split=split
        )
    return dataset_import(
        dataset=dataset,
        user=user,
        stream=upload,
        filename=upload.name,
        fmt=fmt,
        on_duplicate=on_duplicate,
        status=status,
        split=split,
    )
