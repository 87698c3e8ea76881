from django.db import migrations


class Migration(migrations.Migration):
    """Room on each page for the new version of a row a debit changes (a grant's
    remaining credits, an account's balance), so the update stays on the page
    (HOT) and indexes do not grow with every debit of a busy account."""

    dependencies = [("usage", "0003_default_rate_card")]

    operations = [
        migrations.RunSQL("ALTER TABLE usage_grant SET (fillfactor = 80)", "ALTER TABLE usage_grant RESET (fillfactor)"),
        migrations.RunSQL(
            "ALTER TABLE usage_creditaccount SET (fillfactor = 80)", "ALTER TABLE usage_creditaccount RESET (fillfactor)"
        ),
    ]
