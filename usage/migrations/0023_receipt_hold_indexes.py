# A run receipt's reads of holds (usage.selectors.receipts): the events
# recorded against a hold, of every run, and every child of a hold.

from django.contrib.postgres.operations import AddIndexConcurrently
from django.db import migrations, models


class Migration(migrations.Migration):
    # Built without blocking the ledger's writes: a large ledger keeps taking usage meanwhile.
    atomic = False

    dependencies = [
        ('usage', '0021_figures_indexes'),
    ]

    operations = [
        AddIndexConcurrently(
            model_name='usageevent',
            index=models.Index(condition=models.Q(('hold__isnull', False)), fields=['hold'], name='usage_event_hold'),
        ),
        AddIndexConcurrently(
            model_name='hold',
            index=models.Index(condition=models.Q(('parent__isnull', False)), fields=['parent'], name='hold_children'),
        ),
    ]
