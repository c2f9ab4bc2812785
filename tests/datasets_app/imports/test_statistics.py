"""After a bulk import PostgreSQL's planner knows about the new pairs at once, with no manual ANALYZE."""

import io
import json

import pytest
from django.db import connection

from datasets_app.imports.services import ANALYZE_MIN_ROWS, dataset_import

pytestmark = pytest.mark.django_db(transaction=True)


def planned_rows(dataset_id: int) -> float:
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN (FORMAT JSON) SELECT id FROM datasets_app_example WHERE dataset_id = %s", [dataset_id])
        plan = cursor.fetchone()[0]
    plan = json.loads(plan) if isinstance(plan, str) else plan
    return plan[0]["Plan"]["Plan Rows"]


@pytest.mark.skipif(connection.vendor != "postgresql", reason="SQLite's plans do not change with statistics")
def test_a_bulk_import_leaves_the_planner_knowing_the_datasets_size(dataset, annotator):
    count = max(ANALYZE_MIN_ROWS, 3000)
    lines = (json.dumps({"prompt": f"Question {n}?", "response": f"Answer {n}."}) for n in range(count))

    dataset_import(dataset=dataset, user=annotator, stream=io.BytesIO("\n".join(lines).encode()), filename="p.jsonl")

    # Without statistics the planner guesses 0.5% of the table for a dataset, and -1 rows for a fresh table.
    assert planned_rows(dataset.pk) >= count / 2
    with connection.cursor() as cursor:
        cursor.execute("SELECT reltuples FROM pg_class WHERE relname = 'datasets_app_example'")
        assert cursor.fetchone()[0] >= count * 0.9
