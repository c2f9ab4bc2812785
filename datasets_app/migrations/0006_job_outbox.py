"""Jobs go through the outbox: each names its task, and records when a send of it reached the broker.

Jobs made before this get the task their kind always had, so the dispatcher can send a queued one again.
"""

from django.db import migrations, models

TASK_OF_KIND = {
    "import": "datasets_app.imports.tasks.import_job_task",
    "generate": "datasets_app.blueprints.tasks.generate_job_task",
    "draft": "datasets_app.blueprints.tasks.generate_job_task",
    "lint": "datasets_app.lint.tasks.lint_job_task",
}


def name_the_tasks(apps, schema_editor):
    jobs = apps.get_model("datasets_app", "Job").objects
    for kind, task in TASK_OF_KIND.items():
        jobs.filter(kind=kind, task="").update(task=task)


class Migration(migrations.Migration):
    dependencies = [
        ("datasets_app", "0005_dataset_linted_at_lint_jobs"),
    ]

    operations = [
        migrations.AddField(
            model_name="job",
            name="dispatch_count",
            field=models.PositiveIntegerField(default=0, help_text="How many sends of its task reached the broker."),
        ),
        migrations.AddField(
            model_name="job",
            name="dispatched_at",
            field=models.DateTimeField(
                blank=True, help_text="When its task last reached the broker; null until a send succeeded.", null=True
            ),
        ),
        migrations.AddField(
            model_name="job",
            name="task",
            field=models.CharField(blank=True, help_text="The Celery task that runs it, by name.", max_length=200),
        ),
        migrations.RunPython(name_the_tasks, migrations.RunPython.noop),
    ]
