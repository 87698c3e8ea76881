"""Runs of reconciliation with Stripe and their findings; the nightly beat
entry that only checked the ledger goes, since this run folds that check in.

django-celery-beat's scheduler copies CELERY_BEAT_SCHEDULE into its table and
never removes an entry the settings dropped, so the old one is deleted here."""

import django.db.models.deletion
from django.db import migrations, models


def drop_ledger_only_beat_entry(apps, schema_editor):
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    PeriodicTask.objects.filter(name="ledger-reconcile", task="usage.ledger_reconcile").delete()


class Migration(migrations.Migration):

    dependencies = [
        ('billing', '0007_billing_state_history'),
        ('orgs', '0005_members_paid_since'),
        ('django_celery_beat', '0019_alter_periodictasks_options'),
    ]

    operations = [
        migrations.CreateModel(
            name='ReconciliationRun',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('started_at', models.DateTimeField(auto_now_add=True)),
                ('finished_at', models.DateTimeField(blank=True, null=True)),
                ('since', models.DateTimeField(blank=True, help_text='Only Stripe objects and grants made since then.', null=True)),
                ('trigger', models.CharField(help_text='beat, command, or the staff member who asked for it.', max_length=64)),
                ('status', models.CharField(choices=[('running', 'Running (or stopped before it finished)'), ('clean', 'No drift'), ('drift', 'Drift found')], default='running', max_length=8)),
                ('checked', models.JSONField(blank=True, default=dict, help_text='How many of each thing were checked.')),
                ('findings_count', models.PositiveIntegerField(default=0)),
            ],
            options={
                'ordering': ['-started_at', '-id'],
                'indexes': [models.Index(fields=['-started_at'], name='reconcile_run_recent')],
            },
        ),
        migrations.CreateModel(
            name='ReconciliationFinding',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('kind', models.CharField(choices=[('paid_without_grant', 'Paid in Stripe, no credits granted'), ('granted_twice', 'One payment granted more than once'), ('grant_without_payment', 'Granted for a payment that did not succeed'), ('grant_amount', 'Granted amount differs from what was bought'), ('refund_not_clawed_back', 'Refund without its clawback'), ('clawback_without_refund', 'Clawback without a refund in Stripe'), ('dispute_not_clawed_back', 'Lost dispute without its clawback'), ('overage_not_reported', 'Overage debt not reported to Stripe'), ('overage_not_settled', 'Overage report and settlement differ'), ('cached_balance', 'Cached balance differs from the ledger')], max_length=32)),
                ('message', models.CharField(max_length=500)),
                ('stripe_id', models.CharField(blank=True, max_length=255)),
                ('stripe_model', models.CharField(blank=True, max_length=32)),
                ('stripe_pk', models.BigIntegerField(blank=True, null=True)),
                ('local_model', models.CharField(blank=True, max_length=64)),
                ('local_pk', models.BigIntegerField(blank=True, null=True)),
                ('org', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to='orgs.organization')),
                ('run', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='findings', to='billing.reconciliationrun')),
            ],
            options={
                'ordering': ['id'],
            },
        ),
        migrations.RunPython(drop_ledger_only_beat_entry, migrations.RunPython.noop),
    ]
