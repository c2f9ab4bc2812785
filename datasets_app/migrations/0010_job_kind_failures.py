"""A job kind for a run's failed prompts reworded into draft pairs (training_app/failures.py)."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("datasets_app", "0009_example_split_and_eval_overlap_setting"),
    ]

    operations = [
        migrations.AlterField(
            model_name="job",
            name="kind",
            field=models.CharField(
                choices=[
                    ("import", "Import"),
                    ("generate", "Generate from template"),
                    ("draft", "Draft responses"),
                    ("lint", "Check dataset"),
                    ("failures", "Failures to drafts"),
                ],
                max_length=20,
            ),
        ),
    ]
