"""Snapshots freeze the dataset's evaluation pairs too (n_eval, eval_hash) and count the training pairs that
repeat them (eval_overlap); a run's evaluation says what it was scored on (source)."""

from django.db import migrations, models


def mark_validation_source(apps, schema_editor):
    """Runs evaluated so far were scored on their snapshot's validation split: say so, as new runs do."""
    TrainingRun = apps.get_model("training_app", "TrainingRun")
    for run in TrainingRun.objects.exclude(evaluation={}).only("id", "evaluation").iterator(chunk_size=500):
        if "source" not in run.evaluation:
            run.evaluation = {"source": "validation", **run.evaluation}
            run.save(update_fields=["evaluation"])


def unmark_source(apps, schema_editor):
    TrainingRun = apps.get_model("training_app", "TrainingRun")
    for run in TrainingRun.objects.exclude(evaluation={}).only("id", "evaluation").iterator(chunk_size=500):
        if run.evaluation.pop("source", None) is not None:
            run.save(update_fields=["evaluation"])


class Migration(migrations.Migration):
    dependencies = [
        ("training_app", "0003_run_outbox"),
    ]

    operations = [
        migrations.AddField(
            model_name="datasetversion",
            name="eval_hash",
            field=models.CharField(
                blank=True,
                help_text="A hash of the evaluation pairs' content, whatever their order; empty without evaluation pairs.",
                max_length=64,
            ),
        ),
        migrations.AddField(
            model_name="datasetversion",
            name="eval_overlap",
            field=models.PositiveIntegerField(
                default=0, help_text="Training pairs whose prompt repeats or nearly repeats an evaluation pair's."
            ),
        ),
        migrations.AddField(
            model_name="datasetversion",
            name="n_eval",
            field=models.PositiveIntegerField(default=0, help_text="Evaluation pairs: scored on, never trained on."),
        ),
        migrations.AlterField(
            model_name="trainingrun",
            name="evaluation",
            field=models.JSONField(
                blank=True,
                default=dict,
                help_text='{"source": "eval_set" or "validation", "before": {...}, "after": {...}}',
            ),
        ),
        migrations.RunPython(mark_validation_source, unmark_source),
    ]
