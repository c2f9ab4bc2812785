"""Runs and playground requests go through the outbox: they record when a send of their task reached the broker."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("training_app", "0002_playground_request_status"),
    ]

    operations = [
        migrations.AddField(
            model_name="playgroundrequest",
            name="dispatch_count",
            field=models.PositiveIntegerField(default=0, help_text="How many sends of its task reached the broker."),
        ),
        migrations.AddField(
            model_name="playgroundrequest",
            name="dispatched_at",
            field=models.DateTimeField(
                blank=True, help_text="When its task last reached the broker; null until a send succeeded.", null=True
            ),
        ),
        migrations.AddField(
            model_name="trainingrun",
            name="dispatch_count",
            field=models.PositiveIntegerField(default=0, help_text="How many sends of its task reached the broker."),
        ),
        migrations.AddField(
            model_name="trainingrun",
            name="dispatched_at",
            field=models.DateTimeField(
                blank=True, help_text="When its task last reached the broker; null until a send succeeded.", null=True
            ),
        ),
    ]
