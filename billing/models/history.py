"""The history of each organization's plan, status and interval: what MRR
movement, churn and trial conversion are counted from.

A PostgreSQL trigger on `BillingState` writes a `BillingStateChange` whenever
one of the three changes (and one for a new row), so every path that changes
them records it: the services, a webhook, a task, a queryset `update()`, the
admin. Nothing in Python writes these rows.
"""

from __future__ import annotations

import pgtrigger
from django.db import models

from usage.models.triggers import APPEND_ONLY

# What a billing state brings in a year, in cents: the plan price of its
# interval (twelve times a monthly one) while the subscription is paid for
# (active, or past due in its grace period); nothing on a trial or on Free.
# Read from the catalog when the change happens, so a later price change does
# not rewrite the past. MRR is the sum of these over twelve: integers added,
# one division at the end.
ANNUAL_CENTS_SQL = """
CASE WHEN {row}.status IN ('active', 'past_due') THEN coalesce((
    SELECT CASE pp."interval" WHEN 'year' THEN pp.amount_cents ELSE pp.amount_cents * 12 END
    FROM billing_planprice pp JOIN billing_plan p ON p.id = pp.plan_id
    WHERE p.code = {row}.plan_code AND pp."interval" = {row}."interval"
), 0) ELSE 0 END
"""

PAYING_STATUSES = ("active", "past_due")

# The change is stamped with the row's `updated_at`: Django's clock (which
# tests freeze) at the save that made it. A queryset update() does not set
# auto_now fields, so one that changes these columns sets updated_at itself.
_RECORD_CHANGE = """
IF TG_OP = 'UPDATE' AND OLD.plan_code IS NOT DISTINCT FROM NEW.plan_code
   AND OLD.status IS NOT DISTINCT FROM NEW.status AND OLD."interval" IS NOT DISTINCT FROM NEW."interval" THEN
    RETURN NULL;
END IF;
INSERT INTO billing_billingstatechange
    (org_id, plan_code, status, "interval", previous_plan_code, previous_status, previous_interval,
     annual_cents, changed_at)
VALUES (
    NEW.org_id, NEW.plan_code, NEW.status, NEW."interval",
    CASE WHEN TG_OP = 'UPDATE' THEN OLD.plan_code ELSE '' END,
    CASE WHEN TG_OP = 'UPDATE' THEN OLD.status ELSE '' END,
    CASE WHEN TG_OP = 'UPDATE' THEN OLD."interval" ELSE '' END,
    """ + ANNUAL_CENTS_SQL.format(row="NEW") + """,
    coalesce(NEW.updated_at, now())
);
RETURN NULL;
"""

RECORD_CHANGE = pgtrigger.Trigger(
    name="record_billing_change",
    when=pgtrigger.After,
    operation=pgtrigger.Insert | pgtrigger.Update,
    func=_RECORD_CHANGE,
)


class BillingStateChange(models.Model):
    """An organization's plan, status or interval as it became at `changed_at`
    (and as it was just before). Append-only; written by `RECORD_CHANGE`."""

    org = models.ForeignKey("orgs.Organization", on_delete=models.PROTECT, related_name="+", db_index=False)
    plan_code = models.CharField(max_length=32)
    status = models.CharField(max_length=10)
    interval = models.CharField(max_length=5, blank=True)
    previous_plan_code = models.CharField(max_length=32, blank=True, help_text="Empty: the state's first row.")
    previous_status = models.CharField(max_length=10, blank=True)
    previous_interval = models.CharField(max_length=5, blank=True)
    annual_cents = models.BigIntegerField(help_text="Paid per year from then on: MRR x 12, in cents (0 unless paying).")
    changed_at = models.DateTimeField()

    class Meta:
        indexes = [
            # An org's state at any moment: its latest change before it (MRR at
            # the start and the end of a month); and its own history, newest first.
            models.Index(fields=["org", "-changed_at", "-id"], name="billing_change_org_recent"),
            # The month's changes (trial conversion).
            models.Index(fields=["changed_at"], name="billing_change_time"),
        ]
        triggers = [APPEND_ONLY]

    def __str__(self) -> str:
        return f"{self.org_id}: {self.previous_plan_code or '-'}/{self.previous_status or '-'} → {self.plan_code}/{self.status}"
