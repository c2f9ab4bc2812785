"""Preference pairs made from blind votes: which vote, into which dataset, which side chosen and which rejected."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("datasets_app", "0011_preference_pairs"),
        ("training_app", "0006_ab_judgement"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="VotePair",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                ("updated_at", models.DateTimeField(auto_now=True)),
                (
                    "chosen",
                    models.CharField(
                        choices=[("a", "Answer 1"), ("b", "Answer 2"), ("rewrite", "The voter's rewrite")],
                        max_length=10,
                    ),
                ),
                (
                    "rejected",
                    models.CharField(
                        choices=[("a", "Answer 1"), ("b", "Answer 2"), ("rewrite", "The voter's rewrite")],
                        max_length=10,
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
                    "example",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE, related_name="+", to="datasets_app.example"
                    ),
                ),
                (
                    "vote",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE, related_name="pairs", to="training_app.abvote"
                    ),
                ),
            ],
            options={
                "ordering": ["vote", "id"],
                "constraints": [
                    models.UniqueConstraint(fields=("vote", "dataset", "rejected"), name="unique_vote_pair")
                ],
            },
        ),
    ]
