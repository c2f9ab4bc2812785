"""Run as a separate process by test_staged_import: what people do in a dataset while a large import writes to it.

New pairs, edits, a settings change and a request to check the dataset, over and over until a stop file
appears, each allowed only a short wait for a lock (SQLite's busy timeout comes from SQLITE_BUSY_TIMEOUT_S;
on PostgreSQL a lock_timeout is set here). Prints one JSON line: the errors, the longest single write, the count.
"""

import json
import os
import sys
import time
from pathlib import Path

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
django.setup()

from django.contrib.auth import get_user_model  # noqa: E402
from django.db import connection  # noqa: E402

from datasets_app.curation.services import dataset_update, example_create, example_update  # noqa: E402
from datasets_app.lint.jobs import lint_job_create  # noqa: E402
from datasets_app.models import Dataset, Job, JobStatus  # noqa: E402

LOCK_WAIT_S = 3


def main(dataset_id: int, username: str, stop_file: str) -> None:
    dataset = Dataset.objects.get(pk=dataset_id)
    user = get_user_model().objects.get(username=username)
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(f"SET lock_timeout = '{LOCK_WAIT_S}s'")
    errors: list[str] = []
    longest, writes, n = 0.0, 0, 0
    deadline = time.monotonic() + 600
    while not Path(stop_file).exists() and time.monotonic() < deadline:
        for name, write in _writes(dataset, user, n):
            started = time.monotonic()
            try:
                write()
            except Exception as error:  # every failure is what the test reports
                errors.append(f"{name}: {type(error).__name__}: {error}")
            longest = max(longest, time.monotonic() - started)
            writes += 1
        n += 1
        time.sleep(0.05)
    print(json.dumps({"errors": errors[:20], "longest_s": longest, "writes": writes}))


def _writes(dataset, user, n):  # type: ignore[no-untyped-def]
    created = {}

    def create() -> None:
        created["pair"] = example_create(dataset=dataset, user=user, prompt=f"Writer question {n}?", response="First.")

    def edit() -> None:
        pair = created["pair"]
        example_update(example=pair, user=user, expected_version=pair.version, response="Edited.")

    def settings_change() -> None:
        dataset.refresh_from_db()
        dataset_update(dataset=dataset, user=user, guidelines=f"Round {n} of the guidelines.")

    def lint_request() -> None:
        job = lint_job_create(dataset=dataset, user=user)
        # The request (and its lock on the dataset row) is what is measured; the check itself would keep the
        # test's worker busy for a minute afterwards, so it is called off before a worker claims it.
        Job.objects.filter(pk=job.pk, status=JobStatus.QUEUED).update(status=JobStatus.FAILED, error="not needed")

    writes = [("new pair", create), ("edit", edit), ("settings change", settings_change)]
    if n % 5 == 0:
        writes.append(("check request", lint_request))
    return writes


if __name__ == "__main__":
    main(int(sys.argv[1]), sys.argv[2], sys.argv[3])
