"""Pairs belong to the training set (every pair so far) or the dataset's evaluation set; datasets may refuse
snapshots whose training prompts repeat evaluation prompts."""

import importlib

from django.db import migrations, models

# Adding a column to the example table makes SQLite copy it to a new table, which drops its triggers:
# the full-text index's triggers from 0002 are created again at the end (both ways), as in 0004.
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
        ("datasets_app", "0008_import_stage"),
    ]

    operations = [
        migrations.AddField(
            model_name="dataset",
            name="refuse_eval_overlap",
            field=models.BooleanField(
                default=False,
                help_text="Refuse snapshots in which a training pair's prompt repeats or nearly repeats an evaluation pair's.",
            ),
        ),
        migrations.AddField(
            model_name="example",
            name="split",
            field=models.CharField(
                choices=[("train", "Training set"), ("eval", "Evaluation set")], default="train", max_length=10
            ),
        ),
        migrations.AlterField(
            model_name="examplerevision",
            name="action",
            field=models.CharField(
                choices=[
                    ("create", "Created"),
                    ("edit", "Edited"),
                    ("status", "Status changed"),
                    ("restore", "Restored"),
                    ("split", "Moved"),
                ],
                max_length=20,
            ),
        ),
        migrations.AddIndex(
            model_name="example",
            index=models.Index(fields=["dataset", "split", "id"], name="example_dataset_split"),
        ),
        migrations.RunPython(restore_search_triggers, restore_search_triggers),
    ]
