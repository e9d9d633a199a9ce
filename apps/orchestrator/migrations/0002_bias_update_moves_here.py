# The lab bias update is part of how a deployment scores, so it moves from the training app to the
# orchestrator (the scoring path reads it); existing rows are copied over, then training drops its table.

import django.core.validators
import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


FIELDS = (
    "deployment_id", "number", "enabled", "alpha", "max_lab_age_seconds", "lab_delay_seconds", "lab_min",
    "lab_max", "reset_each_batch", "reason", "created_by_id", "created_at", "applied_at", "state",
)


def copy_from_training(apps, schema_editor):
    old = apps.get_model("training", "BiasCorrection")
    new = apps.get_model("orchestrator", "BiasCorrection")
    rows = [new(**{name: getattr(row, name) for name in FIELDS}) for row in old.objects.all()]
    new.objects.bulk_create(rows)


def copy_back(apps, schema_editor):
    old = apps.get_model("training", "BiasCorrection")
    new = apps.get_model("orchestrator", "BiasCorrection")
    old.objects.bulk_create([old(**{name: getattr(row, name) for name in FIELDS}) for row in new.objects.all()])


class Migration(migrations.Migration):

    dependencies = [
        ('orchestrator', '0001_initial'),
        ('training', '0001_initial'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddField(
            model_name='watermark',
            name='bias_state',
            field=models.JSONField(blank=True, default=dict, help_text="Lab bias update memo: the version's raw estimate at each lab sample already seen, per output."),
        ),
        migrations.CreateModel(
            name='BiasCorrection',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('number', models.PositiveIntegerField()),
                ('enabled', models.BooleanField(default=True)),
                ('alpha', models.FloatField(help_text='Trust in each new lab residual.', validators=[django.core.validators.MinValueValidator(0.0), django.core.validators.MaxValueValidator(1.0)])),
                ('max_lab_age_seconds', models.PositiveIntegerField(default=28800)),
                ('lab_delay_seconds', models.PositiveIntegerField(default=14400, help_text='When a lab result becomes known after sampling.')),
                ('lab_min', models.FloatField(blank=True, null=True)),
                ('lab_max', models.FloatField(blank=True, null=True)),
                ('reset_each_batch', models.BooleanField(default=True, help_text='Start every batch with a zero bias.')),
                ('reason', models.TextField(blank=True)),
                ('created_at', models.DateTimeField(auto_now_add=True)),
                ('applied_at', models.DateTimeField(blank=True, null=True)),
                ('state', models.JSONField(blank=True, default=dict, help_text='Per batch: current bias, samples used and rejected.')),
                ('created_by', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL)),
                ('deployment', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='bias_corrections', to='orchestrator.deployment')),
            ],
            options={
                'ordering': ['deployment', '-number'],
                'constraints': [models.UniqueConstraint(fields=('deployment', 'number'), name='orchestrator_bias_unique_number')],
            },
        ),
        migrations.RunPython(copy_from_training, copy_back),
    ]
