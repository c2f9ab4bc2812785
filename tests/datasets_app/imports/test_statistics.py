"""After a bulk import PostgreSQL's planner knows about the new pairs at once, with no manual ANALYZE."""

import io
import json

import pytest
from django.core.files.base import ContentFile
from django.db import connection

from datasets_app.imports.services import ANALYZE_MIN_ROWS, dataset_import
from datasets_app.imports.tasks import import_job_task
from datasets_app.models import Job
from tests.worker import wait_for

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.worker,
    pytest.mark.skipif(connection.vendor != "postgresql", reason="SQLite's plans do not change with statistics"),
]
COUNT = max(ANALYZE_MIN_ROWS, 3000)


def pairs_file() -> bytes:
    return "\n".join(
        json.dumps({"prompt": f"Question {n}?", "response": f"Answer {n}."}) for n in range(COUNT)
    ).encode()


def planner_knows(dataset_id: int) -> bool:
    """Whether the planner expects the dataset's pairs: without fresh statistics it guesses 0.5% of a table."""
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN (FORMAT JSON) SELECT id FROM datasets_app_example WHERE dataset_id = %s", [dataset_id])
        plan = cursor.fetchone()[0]
        cursor.execute("SELECT reltuples FROM pg_class WHERE relname = 'datasets_app_example'")
        table_rows = cursor.fetchone()[0]
    plan = json.loads(plan) if isinstance(plan, str) else plan
    return plan[0]["Plan"]["Plan Rows"] >= COUNT / 2 and table_rows >= COUNT * 0.9


def test_an_import_in_a_request_has_a_worker_refresh_the_statistics(celery_worker, dataset, annotator):
    dataset_import(dataset=dataset, user=annotator, stream=io.BytesIO(pairs_file()), filename="p.jsonl")

    assert wait_for(lambda: planner_knows(dataset.pk), timeout=60)


def test_an_import_job_refreshes_the_statistics_when_it_is_done(celery_worker, dataset, annotator):
    params = {"filename": "p.jsonl", "format": "pairs", "on_duplicate": "skip", "status": "draft"}
    job = Job(kind=Job.Kind.IMPORT, dataset=dataset, created_by=annotator, params=params)
    job.file.save("p.jsonl", ContentFile(pairs_file()), save=False)
    job.save()

    import_job_task.delay(job.pk)

    wait_for(lambda: Job.objects.get(pk=job.pk).finished, timeout=120)
    assert Job.objects.get(pk=job.pk).status == "succeeded"
    assert wait_for(lambda: planner_knows(dataset.pk), timeout=30)
