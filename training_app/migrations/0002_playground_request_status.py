"""A playground request becomes a job row: a status (queued, running, succeeded, failed) instead of `done`."""

from django.db import migrations, models
from django.db.models import F


def done_to_status(apps, schema_editor):
    requests = apps.get_model("training_app", "PlaygroundRequest").objects
    requests.filter(done=True).exclude(error="").update(status="failed", finished_at=F("updated_at"))
    requests.filter(done=True, error="").update(status="succeeded", finished_at=F("updated_at"))
    requests.filter(done=False).update(status="queued")


def status_to_done(apps, schema_editor):
    requests = apps.get_model("training_app", "PlaygroundRequest").objects
    requests.filter(status__in=("succeeded", "failed")).update(done=True)


class Migration(migrations.Migration):
    dependencies = [
        ("training_app", "0001_initial"),
    ]

    operations = [
        migrations.AddField(
            model_name="playgroundrequest",
            name="status",
            field=models.CharField(
                choices=[
                    ("queued", "Queued"),
                    ("running", "Generating"),
                    ("succeeded", "Answered"),
                    ("failed", "Failed"),
                ],
                default="queued",
                max_length=20,
            ),
        ),
        migrations.AddField(
            model_name="playgroundrequest",
            name="started_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="playgroundrequest",
            name="finished_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.RunPython(done_to_status, status_to_done),
        migrations.RemoveField(
            model_name="playgroundrequest",
            name="done",
        ),
        migrations.AddIndex(
            model_name="playgroundrequest",
            index=models.Index(fields=["status", "started_at"], name="playground_status_started"),
        ),
    ]
