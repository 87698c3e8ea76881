# The run receipt's indexes (usage.selectors.receipts): a run's events and
# holds, of the org's own account and of its members paying personally.
# Built CONCURRENTLY: usage_usageevent is the largest, busiest table, and a
# plain CREATE INDEX would block every usage insert while it builds.

from django.contrib.postgres.operations import AddIndexConcurrently
from django.db import migrations, models


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("usage", "0018_quote_locked_rates"),
    ]

    operations = [
        AddIndexConcurrently(
            model_name='hold',
            index=models.Index(condition=models.Q(('workflow_run_id', ''), _negated=True), fields=['account', 'workflow_run_id'], name='hold_account_run'),
        ),
        AddIndexConcurrently(
            model_name='hold',
            index=models.Index(condition=models.Q(('for_org__isnull', False), models.Q(('workflow_run_id', ''), _negated=True)), fields=['for_org', 'workflow_run_id'], name='hold_for_org_run'),
        ),
        AddIndexConcurrently(
            model_name='usageevent',
            index=models.Index(condition=models.Q(('workflow_run_id', ''), _negated=True), fields=['account', 'workflow_run_id'], name='usage_event_account_run'),
        ),
        AddIndexConcurrently(
            model_name='usageevent',
            index=models.Index(condition=models.Q(('for_org__isnull', False), models.Q(('workflow_run_id', ''), _negated=True)), fields=['for_org', 'workflow_run_id'], name='usage_event_for_org_run'),
        ),
    ]
