# The bias update now lives in the orchestrator (its 0002 copied the rows).

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ('training', '0001_initial'),
        ('orchestrator', '0002_bias_update_moves_here'),
    ]

    operations = [
        migrations.DeleteModel(
            name='BiasCorrection',
        ),
    ]
