"""PostgreSQL: the search vector of each pair stored in a generated column, GIN-indexed, instead of an index over
the expression. A search that reads a dataset's rows (a small dataset, or a plan made without statistics) then
compares stored vectors rather than computing `to_tsvector` for each pair, about 60 µs apiece: a search in a
5,000-pair dataset took 300 ms that way (bench/web_bench.py, README). Nothing changes on SQLite (FTS5).

Adding the column rewrites the pairs table under an exclusive lock: about 10 s per 100,000 pairs (measured on
the busy 2-core machine, migrating 100,000 pairs).
"""

import importlib

from django.db import migrations

search = importlib.import_module("datasets_app.migrations.0002_example_search")

VECTOR = "to_tsvector('simple', prompt || ' ' || response)"
INDEX_CREATE = ["CREATE INDEX example_search_gin ON datasets_app_example USING gin (search_vector)"]
INDEX_DROP = ["DROP INDEX IF EXISTS example_search_gin"]
PG_UP = [
    *INDEX_DROP,
    f"ALTER TABLE datasets_app_example ADD COLUMN search_vector tsvector GENERATED ALWAYS AS ({VECTOR}) STORED",
    *INDEX_CREATE,
]
PG_DOWN = [*INDEX_DROP, "ALTER TABLE datasets_app_example DROP COLUMN IF EXISTS search_vector", *search.PG_UP]


def _run(statements):
    def run(apps, schema_editor):
        if schema_editor.connection.vendor == "postgresql":
            for statement in statements:
                schema_editor.execute(statement)

    return run


class Migration(migrations.Migration):
    dependencies = [("datasets_app", "0012_job_kind_export")]

    operations = [migrations.RunPython(_run(PG_UP), _run(PG_DOWN))]
