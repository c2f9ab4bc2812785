"""Full-text index over prompt and response: FTS5 on SQLite, a GIN tsvector index on PostgreSQL."""

from django.db import migrations

SQLITE_UP = [
    "CREATE VIRTUAL TABLE datasets_app_example_fts USING fts5(prompt, response, content='datasets_app_example', content_rowid='id', tokenize='unicode61 remove_diacritics 2')",
    "CREATE TRIGGER datasets_app_example_fts_ai AFTER INSERT ON datasets_app_example BEGIN INSERT INTO datasets_app_example_fts(rowid, prompt, response) VALUES (new.id, new.prompt, new.response); END",
    "CREATE TRIGGER datasets_app_example_fts_ad AFTER DELETE ON datasets_app_example BEGIN INSERT INTO datasets_app_example_fts(datasets_app_example_fts, rowid, prompt, response) VALUES ('delete', old.id, old.prompt, old.response); END",
    "CREATE TRIGGER datasets_app_example_fts_au AFTER UPDATE OF prompt, response ON datasets_app_example BEGIN INSERT INTO datasets_app_example_fts(datasets_app_example_fts, rowid, prompt, response) VALUES ('delete', old.id, old.prompt, old.response); INSERT INTO datasets_app_example_fts(rowid, prompt, response) VALUES (new.id, new.prompt, new.response); END",
    "INSERT INTO datasets_app_example_fts(datasets_app_example_fts) VALUES ('rebuild')",
]
SQLITE_DOWN = [
    "DROP TRIGGER IF EXISTS datasets_app_example_fts_ai",
    "DROP TRIGGER IF EXISTS datasets_app_example_fts_ad",
    "DROP TRIGGER IF EXISTS datasets_app_example_fts_au",
    "DROP TABLE IF EXISTS datasets_app_example_fts",
]
PG_UP = [
    "CREATE INDEX example_search_gin ON datasets_app_example USING gin (to_tsvector('simple', prompt || ' ' || response))"
]
PG_DOWN = ["DROP INDEX IF EXISTS example_search_gin"]


def _run(statements_by_vendor):
    def run(apps, schema_editor):
        for statement in statements_by_vendor.get(schema_editor.connection.vendor, []):
            schema_editor.execute(statement)

    return run


class Migration(migrations.Migration):
    dependencies = [("datasets_app", "0001_initial")]

    operations = [
        migrations.RunPython(
            _run({"sqlite": SQLITE_UP, "postgresql": PG_UP}),
            _run({"sqlite": SQLITE_DOWN, "postgresql": PG_DOWN}),
        ),
    ]
