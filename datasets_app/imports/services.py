"""Importing dataset files: all-or-nothing, streamed, batched into one transaction; large uploads as a job."""

import json
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import BinaryIO

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.files.uploadedfile import UploadedFile
from django.db import connection, transaction
from django.utils import timezone
from django.utils.text import get_valid_filename

from datasets_app.curation.content import content_hash
from datasets_app.curation.limits import import_read_limits, pair_text_errors
from datasets_app.curation.selectors import role_require
from datasets_app.curation.services import dataset_counts_forget
from datasets_app.formats import IMPORT_FORMATS, Problem, Record, UnknownFormat, detect_format, read_records
from datasets_app.jobs.services import job_beating, job_claim, job_create, job_file_discard, job_finish, job_progress
from datasets_app.lint.checks import lint_rules, pair_problems
from datasets_app.models import Dataset, ExampleStatus, Job, JobStatus, Role

logger = logging.getLogger(__name__)
MAX_PROBLEMS = 100
BATCH_SIZE = 5000
COLUMNS = (
    "dataset_id", "system_prompt", "prompt", "response", "history", "status", "tags", "source", "content_hash",
    "version", "review_comment", "created_by_id", "updated_by_id", "created_at", "updated_at", "problems", "problem_count",
)  # fmt: skip
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


def resolve_format(stream: BinaryIO, fmt: str | None, filename: str) -> str:
    """The format asked for, or the one detected from the first 64 KiB."""
    if fmt:
        if fmt not in (*IMPORT_FORMATS, "csv"):
            raise ImportRejected(
                [{"field": "format", "message": f"unknown format {fmt!r}; expected one of {', '.join(IMPORT_FORMATS)}"}]
            )
        return fmt
    head = stream.read(64 * 1024)
    stream.seek(0)
    if not head.strip():
        raise ImportRejected([{"field": "", "message": "the file is empty"}])
    try:
        return detect_format(head, filename)
    except UnknownFormat as error:
        raise ImportRejected([{"field": "format", "message": str(error)}]) from error


def dataset_import(
    *,
    dataset: Dataset,
    user: AbstractBaseUser | None,
    stream: BinaryIO,
    filename: str,
    fmt: str | None = None,
    on_duplicate: str = "skip",
    status: str = ExampleStatus.DRAFT,
    progress: Progress | None = None,
) -> ImportOutcome:
    """Import every record of a file, or nothing: any problem rolls the whole file back (ImportRejected).

    With `progress`, the file is checked in a first pass (reporting progress the database can commit) and
    written in a second; without, checking and writing are one pass.
    """
    if user is not None:
        role_require(
            user=user,
            workspace=dataset.workspace,
            role=Role.LEAD if status in ("approved", "rejected") else Role.ANNOTATOR,
        )
    fmt = resolve_format(stream, fmt, filename)
    if progress is not None:
        _check(_read(stream, fmt, filename), stream, progress)
        stream.seek(0)
        progress("writing", 0.5)
    rows = _Rows(dataset=dataset, user=user, source=f"import:{filename}"[:255], status=status)
    with transaction.atomic():
        last_id = dataset.examples.order_by("-id").values_list("id", flat=True).first() or 0
        written = _write(rows.from_items(_read(stream, fmt, filename)))
        if rows.problems:
            transaction.set_rollback(True)
            raise ImportRejected(rows.problems[:MAX_PROBLEMS], more=len(rows.problems) > MAX_PROBLEMS)
        skipped = 0 if on_duplicate == "keep" else _drop_duplicates(dataset.pk, after_id=last_id)
        dataset_counts_forget(dataset_id=dataset.pk)
    return ImportOutcome(created=written - skipped, skipped_duplicates=skipped, format=fmt)


def _read(stream: BinaryIO, fmt: str, filename: str) -> Iterator[Record | Problem]:
    """The file's records within the memory bounds, each over a text cap turned into its problems
    (e.g. line 5, field response: "at most 100000 characters (got 250000)")."""
    for item in read_records(stream, fmt, filename, import_read_limits()):
        if isinstance(item, Problem):
            yield item
            continue
        errors = pair_text_errors(
            prompt=item.prompt, response=item.response, system_prompt=item.system, history=item.history,
            tags=item.tags, system_name="system",
        )  # fmt: skip
        if errors:
            yield from (Problem(item.position, item.unit, field, message) for field, message in errors.items())
        else:
            yield item


def _drop_duplicates(dataset_id: int, *, after_id: int) -> int:
    """Delete the new rows whose content the dataset already had, or an earlier row of the file had.

    The database does it over the (dataset, content_hash) index, so memory does not grow with the file.
    """
    with connection.cursor() as cursor:
        cursor.execute(
            "DELETE FROM datasets_app_example WHERE dataset_id = %s AND id > %s AND EXISTS ("
            " SELECT 1 FROM datasets_app_example AS earlier WHERE earlier.dataset_id = datasets_app_example.dataset_id"
            " AND earlier.content_hash = datasets_app_example.content_hash AND earlier.id < datasets_app_example.id)",
            [dataset_id, after_id],
        )
        return cursor.rowcount


def _check(items: Iterator[Record | Problem], stream: BinaryIO, progress: Progress) -> None:
    size = max(_size(stream), 1)
    problems = []
    for count, item in enumerate(items, 1):
        if isinstance(item, Problem):
            problems.append(item.as_dict())
            if len(problems) > MAX_PROBLEMS:
                break
        if count % BATCH_SIZE == 0:
            progress("checking", 0.5 * min(stream.tell() / size, 1.0))
    if problems:
        raise ImportRejected(problems[:MAX_PROBLEMS], more=len(problems) > MAX_PROBLEMS)


def _size(stream: BinaryIO) -> int:
    position = stream.tell()
    size = stream.seek(0, 2)
    stream.seek(position)
    return size


class _Rows:
    """Turns records into table rows, collecting problems."""

    def __init__(self, *, dataset: Dataset, user: AbstractBaseUser | None, source: str, status: str) -> None:
        now = (
            connection.ops.adapt_datetimefield_value(timezone.now())
            if connection.vendor == "sqlite"
            else timezone.now()
        )
        user_id = user.pk if user is not None else None
        self.fixed = (status, source, 1, "", user_id, user_id, now, now)
        self.dataset_id = dataset.pk
        self.rules = lint_rules(workspace=dataset.workspace, template=dataset.template)
        self.problems: list[dict] = []

    def from_items(self, items: Iterator[Record | Problem]) -> Iterator[tuple]:
        for item in items:
            if isinstance(item, Problem):
                self.problems.append(item.as_dict())
                if len(self.problems) > MAX_PROBLEMS:
                    return
                continue
            if self.problems:
                continue  # the file is rejected already; keep reading only to list more problems
            digest = content_hash(
                prompt=item.prompt, response=item.response, system_prompt=item.system, history=item.history
            )
            status, source, version, comment, created_by, updated_by, created_at, updated_at = self.fixed
            lint = pair_problems(
                prompt=item.prompt, response=item.response, system_prompt=item.system, history=item.history,
                tags=item.tags, status=status, rules=self.rules,
            )  # fmt: skip
            yield (
                self.dataset_id, item.system, item.prompt, item.response, json.dumps(item.history), status,
                json.dumps(item.tags), source, digest, version, comment, created_by, updated_by, created_at, updated_at,
                json.dumps(lint) if lint else "[]", len(lint),
            )  # fmt: skip


def _write(rows: Iterator[tuple]) -> int:
    """Insert rows in batches (executemany on SQLite, COPY on PostgreSQL); returns how many."""
    table = "datasets_app_example"
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            return _copy(cursor.cursor, table, rows)
        sql = f"INSERT INTO {table} ({', '.join(COLUMNS)}) VALUES ({', '.join(['%s'] * len(COLUMNS))})"  # noqa: S608
        written = 0
        for batch in _batches(rows):
            cursor.executemany(sql, batch)
            written += len(batch)
        return written


def _copy(raw_cursor, table: str, rows: Iterator[tuple]) -> int:  # type: ignore[no-untyped-def]
    written = 0
    with raw_cursor.copy(f"COPY {table} ({', '.join(COLUMNS)}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)
            written += 1
    return written


def _batches(rows: Iterator[tuple]) -> Iterator[list[tuple]]:
    batch = []
    for row in rows:
        batch.append(row)
        if len(batch) == BATCH_SIZE:
            yield batch
            batch = []
    if batch:
        yield batch


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
) -> Job:
    """Store the upload and queue its import; the worker that runs it may be on another machine."""
    role_require(
        user=user, workspace=dataset.workspace, role=Role.LEAD if status in ("approved", "rejected") else Role.ANNOTATOR
    )
    fmt = resolve_format(upload, fmt, upload.name or "")
    from datasets_app.imports.tasks import import_job_task

    return job_create(
        kind=Job.Kind.IMPORT,
        dataset=dataset,
        user=user,
        task=import_job_task.name,
        params={"filename": upload.name, "format": fmt, "on_duplicate": on_duplicate, "status": status},
        upload=upload,
    )


def import_job_run(*, job_id: int) -> None:
    """Run a queued import once; progress and the outcome go to the job row."""
    job = job_claim(job_id)
    if job is None:
        return

    params = job.params
    with job_beating(job):
        try:
            with job.file.open("rb") as stream:
                outcome = dataset_import(
                    dataset=job.dataset, user=job.created_by, stream=stream, filename=params["filename"], fmt=params["format"],
                    on_duplicate=params["on_duplicate"], status=params["status"],
                    progress=lambda phase, fraction: job_progress(job, phase, fraction),
                )  # fmt: skip
        except ImportRejected as rejected:
            job_finish(job, status=JobStatus.FAILED, problems=rejected.problems, error=str(rejected), phase="rejected")
        except Exception as error:
            logger.exception("import job %s failed", job.pk)
            job_finish(job, status=JobStatus.FAILED, error=f"the import failed: {error}", phase="failed")
        else:
            job_finish(job, status=JobStatus.SUCCEEDED, result=outcome.as_dict(), progress=1.0, phase="done")
        finally:
            job_file_discard(job)


def import_upload(
    *, dataset: Dataset, user: AbstractBaseUser, upload: UploadedFile, fmt: str | None, on_duplicate: str, status: str
) -> Job | ImportOutcome:
    """Import an uploaded file now, or queue it for a worker when it is over IMPORT_ASYNC_BYTES (a Job)."""
    upload.name = get_valid_filename(upload.name or "upload") or "upload"
    if upload.size > settings.IMPORT_ASYNC_BYTES:
        return import_job_create(
            dataset=dataset, user=user, upload=upload, fmt=fmt, on_duplicate=on_duplicate, status=status
        )
    return dataset_import(
        dataset=dataset,
        user=user,
        stream=upload,
        filename=upload.name,
        fmt=fmt,
        on_duplicate=on_duplicate,
        status=status,
    )
