"""A large import on a real worker: other writers keep working, readers see nothing until all of it, and an
import that dies or outlives its job leaves nothing behind. Runs on SQLite and PostgreSQL."""

import json
import os
import signal
import subprocess
import sys
import time
from datetime import timedelta

import pytest
from django.conf import settings
from django.core.files.base import ContentFile
from django.db import connection
from django.utils import timezone

from datasets_app.curation.search import search_examples
from datasets_app.imports.staging import import_stages_sweep
from datasets_app.imports.tasks import import_job_task
from datasets_app.jobs.services import job_sweep
from datasets_app.models import Example, ImportStage, Job, JobStatus
from tests.worker import WorkerProcess, database_url, wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]

MARK = "quokka"  # a word only the imported pairs have
SOURCE = "import:big.jsonl"


def big_file(count: int) -> bytes:
    lines = (
        json.dumps({"prompt": f"Imported question {n} about the {MARK}?", "response": f"Imported answer {n}."})
        for n in range(count)
    )
    return "\n".join(lines).encode()


def import_job(dataset, user, count: int) -> Job:  # type: ignore[no-untyped-def]
    """A stored upload and its job, as import_job_create makes them, not yet sent to any worker."""
    params = {"filename": "big.jsonl", "format": "pairs", "on_duplicate": "skip", "status": "draft"}
    job = Job(kind=Job.Kind.IMPORT, dataset=dataset, created_by=user, params=params)
    job.file.save("big.jsonl", ContentFile(big_file(count)), save=False)
    job.save()
    return job


class Reader:
    """Looks at the dataset as any reader would while the import runs: none of it, or all of it once it succeeded."""

    def __init__(self, dataset, expected: int) -> None:  # type: ignore[no-untyped-def]
        self.dataset, self.expected = dataset, expected
        self.looks = self.while_written = 0

    def look(self, job: Job) -> str:
        visible = Example.objects.filter(dataset=self.dataset, source=SOURCE).count()
        found = search_examples(Example.objects.filter(dataset=self.dataset), MARK).count()
        stored = Example._base_manager.filter(dataset=self.dataset, source=SOURCE).count()  # hidden ones too
        status = Job.objects.get(pk=job.pk).status
        assert visible in (0, self.expected), f"a reader saw {visible} of {self.expected} imported pairs"
        assert found in (0, self.expected), f"search found {found} of {self.expected} imported pairs"
        if visible or found:
            assert status == JobStatus.SUCCEEDED, "pairs were visible before their job succeeded"
        self.looks += 1
        self.while_written += bool(stored and not visible)
        return status

    def watch(self, job: Job, timeout: float = 480) -> str:
        deadline = time.monotonic() + timeout
        while (status := self.look(job)) in (JobStatus.QUEUED, JobStatus.RUNNING):
            assert time.monotonic() < deadline, "the import did not finish in time"
            time.sleep(0.2)
        return status


def writing_begun(dataset) -> bool:  # type: ignore[no-untyped-def]
    """Some of the import's rows are in the table (SQLite: committed but hidden; PostgreSQL: COPY under way)."""
    if connection.vendor == "sqlite":
        return Example._base_manager.filter(dataset=dataset, source=SOURCE).exists()
    return other_sessions("query LIKE 'COPY datasets_app_example%%'") > 0


def writing_ended(dataset) -> bool:  # type: ignore[no-untyped-def]
    """No import is writing any more (SQLite: its stage is gone; PostgreSQL: no other session holds a write
    transaction open, as the abandoned COPY does until its worker notices and rolls back)."""
    if connection.vendor == "sqlite":
        return not ImportStage.objects.exists()
    return other_sessions("backend_xid IS NOT NULL") == 0


def other_sessions(condition: str) -> int:
    """PostgreSQL: how many other sessions on the test database match `condition` (SQL over pg_stat_activity)."""
    others = "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
    with connection.cursor() as cursor:
        cursor.execute(f"{others} AND {condition}")  # noqa: S608 - conditions are this module's own literals
        return cursor.fetchone()[0]


def test_a_large_import_keeps_other_writers_going_and_shows_its_pairs_all_at_once(
    celery_worker, dataset, lead, tmp_path
):
    count = 100_000
    job = import_job(dataset, lead, count)
    stop = tmp_path / "stop"
    # Another process edits the same dataset throughout, allowed only a 3 s wait for any lock.
    writer = subprocess.Popen(
        [sys.executable, "-m", "tests.import_writer", str(dataset.pk), lead.username, str(stop)],
        cwd=settings.BASE_DIR,
        env={**os.environ, "DATABASE_URL": database_url(), "SQLITE_BUSY_TIMEOUT_S": "3"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        import_job_task.delay(job.pk)
        reader = Reader(dataset, count)
        status = reader.watch(job)
    finally:
        stop.touch()
        out, err = writer.communicate(timeout=120)
    seen = json.loads(out.strip().splitlines()[-1]) if out.strip() else {"errors": [err[-3000:]]}

    print(f"\nlongest single write during the import: {seen.get('longest_s', 0):.2f} s of {seen.get('writes')} writes")
    assert seen["errors"] == []
    assert writer.returncode == 0, err[-3000:]
    job.refresh_from_db()
    assert (status, job.error, job.result["created"]) == (JobStatus.SUCCEEDED, "", count)
    assert reader.look(job) == JobStatus.SUCCEEDED
    assert Example.objects.filter(dataset=dataset, source=SOURCE).count() == count
    assert search_examples(dataset.examples.all(), MARK).count() == count
    assert dataset.examples.filter(prompt__startswith="Writer question").exists()
    if connection.vendor == "sqlite":
        assert reader.while_written > 0, "no look happened while the rows were written"
        assert not ImportStage.objects.exists()


def test_an_import_whose_worker_is_killed_leaves_a_failed_job_and_no_pairs(celery_worker, dataset, lead):
    from project.celery import app

    with app.connection_for_write() as conn:
        conn.default_channel.queue_purge("doomed-import")
    job = import_job(dataset, lead, 60_000)
    reader = Reader(dataset, 60_000)
    # A worker of its own, so it can be killed (the session's worker would take a task on the default queue).
    doomed = WorkerProcess("doomed-import")
    try:
        import_job_task.apply_async(args=[job.pk], queue="doomed-import")
        wait_for(lambda: reader.look(job) and writing_begun(dataset), timeout=180, interval=0.05)
        os.kill(doomed.process.pid, signal.SIGKILL)
        doomed.process.wait(timeout=30)
    finally:
        doomed.stop()
    assert reader.look(job) == JobStatus.RUNNING

    # What Celery beat runs: the job sweep (here as if its heartbeat timeout had passed), then the import sweep.
    assert job_sweep(now=timezone.now() + timedelta(seconds=settings.JOB_HEARTBEAT_TIMEOUT_S + 5)) == 1
    import_stages_sweep()

    job.refresh_from_db()
    assert job.status == JobStatus.FAILED
    assert "stopped responding" in job.error
    assert Example._base_manager.filter(dataset=dataset).count() == 0  # hidden ones included
    assert not ImportStage.objects.exists()
    assert search_examples(Example._base_manager.all(), MARK).count() == 0


def test_an_import_whose_job_was_swept_while_it_ran_shows_nothing_and_the_job_stays_failed(
    celery_worker, dataset, lead
):
    job = import_job(dataset, lead, 40_000)
    stored = job.file.name
    reader = Reader(dataset, 40_000)
    import_job_task.delay(job.pk)
    wait_for(lambda: reader.look(job) and writing_begun(dataset), timeout=180, interval=0.05)

    # The sweeper takes the job for dead while its worker is still writing (a long stall, a slow disk).
    assert job_sweep(now=timezone.now() + timedelta(seconds=settings.JOB_HEARTBEAT_TIMEOUT_S + 5)) == 1
    # the sweep deletes the failed job's upload at once; the worker notices at its next batch and cleans up
    assert not job.file.storage.exists(stored)
    wait_for(lambda: reader.look(job) and writing_ended(dataset), timeout=240)

    job.refresh_from_db()
    assert job.status == JobStatus.FAILED
    assert "stopped responding" in job.error
    assert job.result == {}
    assert Example._base_manager.filter(dataset=dataset).count() == 0
    assert not ImportStage.objects.exists()
