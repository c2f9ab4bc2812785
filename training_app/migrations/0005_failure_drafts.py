"""Draft training pairs made from a run's failed evaluated prompts: one per evaluated prompt and dataset."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("datasets_app", "0010_job_kind_failures"),
        ("training_app", "0004_snapshot_evaluation_set"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="FailureDraft",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                ("updated_at", models.DateTimeField(auto_now=True)),
                (
                    "paraphrased",
                    models.BooleanField(
                        help_text="The prompt is a model's rewording; else the evaluated prompt as is."
                    ),
                ),
                (
                    "created_by",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
                (
                    "dataset",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE, related_name="+", to="datasets_app.dataset"
                    ),
                ),
                (
                    "eval_item",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE, related_name="drafts", to="training_app.evalitem"
                    ),
                ),
                (
                    "example",
                    models.OneToOneField(
                        on_delete=django.db.models.deletion.CASCADE, related_name="+", to="datasets_app.example"
                    ),
                ),
            ],
            options={
                "ordering": ["eval_item", "id"],
                "constraints": [models.UniqueConstraint(fields=("eval_item", "dataset"), name="unique_failure_draft")],
            },
        ),
    ]
