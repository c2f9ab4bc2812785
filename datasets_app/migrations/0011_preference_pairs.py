"""Preference datasets: a pair's rejected answer beside its chosen one (`response`)."""

import importlib

from django.db import migrations, models

# Adding a column to the example table makes SQLite copy it to a new table, which drops its triggers:
# the full-text index's triggers from 0002 are created again at the end (both ways), as in 0004 and 0009.
search = importlib.import_module("datasets_app.migrations.0002_example_search")
SQLITE_TRIGGERS = [
    statement for statement in search.SQLITE_UP if "CREATE TRIGGER" in statement or "rebuild" in statement
]
SQLITE_DROP = [statement for statement in search.SQLITE_DOWN if "DROP TRIGGER" in statement]


def restore_search_triggers(apps, schema_editor):
    if schema_editor.connection.vendor == "sqlite":
        for statement in [*SQLITE_DROP, *SQLITE_TRIGGERS]:
            schema_editor.execute(statement)


class Migration(migrations.Migration):
    dependencies = [
        ("datasets_app", "0010_job_kind_failures"),
    ]

    operations = [
        migrations.AddField(
            model_name="example",
            name="rejected",
            field=models.TextField(blank=True),
        ),
        migrations.AlterField(
            model_name="dataset",
            name="kind",
            field=models.CharField(
                choices=[
                    ("general", "General"),
                    ("guardrail", "Guardrail"),
                    ("mcq", "Multiple-choice questions"),
                    ("preference", "Preference pairs"),
                ],
                default="general",
                max_length=20,
            ),
        ),
        migrations.RunPython(restore_search_triggers, restore_search_triggers),
    ]
