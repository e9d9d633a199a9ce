"""Watermarks keep late-data checkpoints instead of one count (``services/late_data.py``): the count at the
watermark becomes the first checkpoint, so no group is rescored because of the change."""

from django.db import migrations, models


def counts_to_checkpoints(apps, schema_editor):
    Watermark = apps.get_model("orchestrator", "Watermark")
    changed = []
    for watermark in Watermark.objects.exclude(watermark_ns=None).only("id", "watermark_ns", "scored_points"):
        watermark.checkpoints = [[watermark.watermark_ns, watermark.scored_points]]
        changed.append(watermark)
    Watermark.objects.bulk_update(changed, ["checkpoints"], batch_size=500)


class Migration(migrations.Migration):

    dependencies = [
        ("orchestrator", "0003_deployment_shadow_of"),
    ]

    operations = [
        migrations.AddField(
            model_name="watermark",
            name="checkpoints",
            field=models.JSONField(
                blank=True,
                default=list,
                help_text="Late-data detector: [time (epoch ns), input points at or before it] for the watermark "
                "and earlier positions, newest first (services/late_data.py).",
            ),
        ),
        migrations.RunPython(counts_to_checkpoints, migrations.RunPython.noop),
        migrations.RemoveField(
            model_name="watermark",
            name="scored_points",
        ),
    ]
