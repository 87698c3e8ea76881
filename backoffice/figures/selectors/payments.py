"""Payments over the last 30 days: how many attempts failed, and how many
failures were recovered later.

Subscription invoices are counted from Stripe's events as dj-stripe stored
them (one row per event id, however often it was delivered): `invoice.paid`
with money taken, and `invoice.payment_failed`. Off-session charges are auto
top-up attempts that finished (succeeded, declined or needing authentication).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from django.db import connection

from backoffice.figures.selectors.period import RECENT, Period
from backoffice.figures.selectors.revenue import ratio
from billing.models import AttemptStatus

_FAILED_TOPUP = (AttemptStatus.FAILED.value, AttemptStatus.ACTION_REQUIRED.value)
_FINISHED_TOPUP = (AttemptStatus.SUCCEEDED.value, *_FAILED_TOPUP)


@dataclass(frozen=True)
class Payments:
    invoices_paid: int
    invoices_failed: int
    topups_succeeded: int
    topups_failed: int
    recovered_invoices: int
    recovered_invoice_cents: int
    recovered_topups: int
    recovered_topup_cents: int

    @property
    def attempts(self) -> int:
        return self.invoices_paid + self.invoices_failed + self.topups_succeeded + self.topups_failed

    @property
    def failures(self) -> int:
        return self.invoices_failed + self.topups_failed

    @property
    def failure_percent(self) -> Decimal | None:
        return ratio(self.failures, self.attempts)

    @property
    def recovered(self) -> int:
        return self.recovered_invoices + self.recovered_topups

    @property
    def recovered_cents(self) -> int:
        return self.recovered_invoice_cents + self.recovered_topup_cents


# An invoice is recovered when it was paid in the window after a failed attempt
# (the failure may be up to 30 days older than the window: Stripe's retries
# and the grace period are shorter). Each invoice's first failure is found once
# and joined, not looked up per payment.
_INVOICES_SQL = """
WITH e AS (
    SELECT type, data -> 'object' ->> 'id' AS invoice, created,
           coalesce((data -> 'object' ->> 'amount_paid')::bigint, 0) AS paid
    FROM djstripe_event
    WHERE type IN ('invoice.paid', 'invoice.payment_failed') AND created >= %(lookback)s AND created < %(until)s
), failed AS (
    SELECT invoice, min(created) AS first_at FROM e WHERE type = 'invoice.payment_failed' GROUP BY invoice
), w AS (
    SELECT e.type, e.paid, (e.type = 'invoice.paid' AND e.paid > 0 AND f.first_at < e.created) AS recovered
    FROM e LEFT JOIN failed f USING (invoice) WHERE e.created >= %(since)s
)
SELECT count(*) FILTER (WHERE type = 'invoice.paid' AND paid > 0),
       count(*) FILTER (WHERE type = 'invoice.payment_failed'),
       count(*) FILTER (WHERE recovered),
       coalesce(sum(paid) FILTER (WHERE recovered), 0)
FROM w
"""

# A top-up is recovered when a retry (attempt 2 or later of one trigger) succeeded.
_TOPUPS_SQL = """
SELECT count(*) FILTER (WHERE status = 'succeeded'),
       count(*) FILTER (WHERE status = ANY(%(failed)s)),
       count(*) FILTER (WHERE status = 'succeeded' AND number > 1),
       coalesce(sum(amount_cents) FILTER (WHERE status = 'succeeded' AND number > 1), 0)
FROM billing_topupattempt
WHERE status = ANY(%(finished)s) AND created_at >= %(since)s AND created_at < %(until)s
"""


def payment_failures(period: Period) -> Payments:
    params = {"since": period.recent_start, "lookback": period.recent_start - RECENT, "until": period.as_of,
              "failed": list(_FAILED_TOPUP), "finished": list(_FINISHED_TOPUP)}
    with connection.cursor() as cursor:
        cursor.execute(_INVOICES_SQL, params)
        paid, failed, recovered, recovered_cents = cursor.fetchone()
        cursor.execute(_TOPUPS_SQL, params)
        t_ok, t_failed, t_recovered, t_recovered_cents = cursor.fetchone()
    return Payments(
        invoices_paid=paid, invoices_failed=failed, topups_succeeded=t_ok, topups_failed=t_failed,
        recovered_invoices=recovered, recovered_invoice_cents=int(recovered_cents),
        recovered_topups=t_recovered, recovered_topup_cents=int(t_recovered_cents),
    )
