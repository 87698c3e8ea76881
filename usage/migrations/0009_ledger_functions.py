"""Install the ledger's PostgreSQL functions (usage/sql/ledger_functions.sql).

They used to be installed after every `migrate` by a post_migrate hook; a
migration makes `migrate` alone build a working database and says when they
change. The file is CREATE OR REPLACE throughout: a later change to it comes
with a new migration that runs it again. Reversing drops nothing the tables
need, so it is a no-op.
"""

from django.db import migrations

from usage.sql import ledger_functions


class Migration(migrations.Migration):
    dependencies = [
        ("usage", "0008_grant_source_overage_invoiced"),
        ("orgs", "0001_initial"),
    ]

    operations = [migrations.RunSQL(ledger_functions(), reverse_sql=migrations.RunSQL.noop)]
