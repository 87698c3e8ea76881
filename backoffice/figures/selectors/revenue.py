"""Subscription revenue: MRR and its movement, churn, trial conversion.

Everything here is read from `billing.BillingStateChange`, the history a
trigger keeps of each organization's plan, status and interval, with what it
brings per year (`annual_cents`, the trigger's rule). An organization's state
at a moment is its latest change before it; MRR is the sum of `annual_cents`
over twelve, divided once at the end, so monthly and yearly prices add up
exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from django.db import connection

from backoffice.figures.selectors.period import Period
from billing.models import PAYING_STATUSES

_CENT = Decimal("0.01")


def mrr_cents(annual_cents: int) -> Decimal:
    """Monthly revenue in cents, to the hundredth of a cent (a yearly $99.90 is 832.50)."""
    return (Decimal(annual_cents) / 12).quantize(_CENT, rounding=ROUND_HALF_UP)


def ratio(part: int | Decimal, whole: int | Decimal) -> Decimal | None:
    """A share as a percentage with one decimal; None when there is nothing to divide by."""
    if not whole:
        return None
    return (Decimal(part) * 100 / Decimal(whole)).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP)


@dataclass(frozen=True)
class Movement:
    """Organizations that moved one way in the month and the MRR (cents) they moved."""

    orgs: int
    annual_cents: int

    @property
    def mrr_cents(self) -> Decimal:
        return mrr_cents(self.annual_cents)


@dataclass(frozen=True)
class Revenue:
    mrr_start_annual_cents: int
    mrr_annual_cents: int
    customers_start: int
    customers: int
    new: Movement
    expansion: Movement
    contraction: Movement
    churned: Movement
    reactivated: Movement

    @property
    def mrr_cents(self) -> Decimal:
        return mrr_cents(self.mrr_annual_cents)

    @property
    def mrr_start_cents(self) -> Decimal:
        return mrr_cents(self.mrr_start_annual_cents)

    @property
    def net_annual_cents(self) -> int:
        """Always MRR now less MRR at the start: the five movements add up to it."""
        return (self.new.annual_cents + self.expansion.annual_cents + self.reactivated.annual_cents
                - self.contraction.annual_cents - self.churned.annual_cents)

    @property
    def net_cents(self) -> Decimal:
        return mrr_cents(self.net_annual_cents)

    # Churn: what was lost in the month over what there was at its start.
    @property
    def customer_churn_percent(self) -> Decimal | None:
        return ratio(self.churned.orgs, self.customers_start)

    @property
    def revenue_churn_percent(self) -> Decimal | None:
        """Gross MRR churn: MRR lost to cancellations and downgrades over MRR at the start."""
        return ratio(self.churned.annual_cents + self.contraction.annual_cents, self.mrr_start_annual_cents)

    @property
    def revenue_lost_cents(self) -> Decimal:
        return mrr_cents(self.churned.annual_cents + self.contraction.annual_cents)


# Each organization's yearly amount at the month's start (s) and at its moment
# (e), from its latest change before each; `before` says whether it ever paid
# before the month (a return is a reactivation, not a new customer). Served by
# the (org, -changed_at, -id) index: one short walk per organization.
_MOVEMENT_SQL = """
WITH s AS (
    SELECT DISTINCT ON (org_id) org_id, annual_cents FROM billing_billingstatechange
    WHERE changed_at < %(start)s ORDER BY org_id, changed_at DESC, id DESC
), e AS (
    SELECT DISTINCT ON (org_id) org_id, annual_cents FROM billing_billingstatechange
    WHERE changed_at < %(as_of)s ORDER BY org_id, changed_at DESC, id DESC
), paid_before AS (
    SELECT DISTINCT org_id FROM billing_billingstatechange WHERE changed_at < %(start)s AND annual_cents > 0
), m AS (
    SELECT coalesce(s.annual_cents, 0) AS a, coalesce(e.annual_cents, 0) AS b,
           (pb.org_id IS NOT NULL) AS before
    FROM e LEFT JOIN s USING (org_id) LEFT JOIN paid_before pb USING (org_id)
)
SELECT
    coalesce(sum(a), 0), coalesce(sum(b), 0), count(*) FILTER (WHERE a > 0), count(*) FILTER (WHERE b > 0),
    count(*) FILTER (WHERE a = 0 AND b > 0 AND NOT before), coalesce(sum(b) FILTER (WHERE a = 0 AND b > 0 AND NOT before), 0),
    count(*) FILTER (WHERE a > 0 AND b > a), coalesce(sum(b - a) FILTER (WHERE a > 0 AND b > a), 0),
    count(*) FILTER (WHERE b > 0 AND b < a), coalesce(sum(a - b) FILTER (WHERE b > 0 AND b < a), 0),
    count(*) FILTER (WHERE a > 0 AND b = 0), coalesce(sum(a) FILTER (WHERE a > 0 AND b = 0), 0),
    count(*) FILTER (WHERE a = 0 AND b > 0 AND before), coalesce(sum(b) FILTER (WHERE a = 0 AND b > 0 AND before), 0)
FROM m
"""


def mrr_movement(period: Period) -> Revenue:
    """MRR at the month's start and at its moment, and what moved it: new
    customers, upgrades (expansion), downgrades (contraction), cancellations
    (churned) and returns (reactivated). An organization counts once, by where
    it stood at the start and where it stands now: one that cancels and comes
    back within the month has not churned."""
    with connection.cursor() as cursor:
        cursor.execute(_MOVEMENT_SQL, {"start": period.start, "as_of": period.as_of})
        r = [int(v) for v in cursor.fetchone()]
    return Revenue(
        mrr_start_annual_cents=r[0], mrr_annual_cents=r[1], customers_start=r[2], customers=r[3],
        new=Movement(r[4], r[5]), expansion=Movement(r[6], r[7]), contraction=Movement(r[8], r[9]),
        churned=Movement(r[10], r[11]), reactivated=Movement(r[12], r[13]),
    )


@dataclass(frozen=True)
class Trials:
    """Trials that ended in the month, and how many of them became paying customers."""

    ended: int
    converted: int
    running: int  # on a trial at the month's moment

    @property
    def conversion_percent(self) -> Decimal | None:
        return ratio(self.converted, self.ended)


_TRIALS_SQL = """
SELECT count(*) FILTER (WHERE previous_status = 'trialing' AND status <> 'trialing'),
       count(*) FILTER (WHERE previous_status = 'trialing' AND status = ANY(%(paying)s)),
       (SELECT count(*) FROM (
            SELECT DISTINCT ON (org_id) status FROM billing_billingstatechange
            WHERE changed_at < %(as_of)s ORDER BY org_id, changed_at DESC, id DESC) t
        WHERE t.status = 'trialing')
FROM billing_billingstatechange
WHERE changed_at >= %(start)s AND changed_at < %(as_of)s
"""


def trial_conversion(period: Period) -> Trials:
    """A trial ends by becoming a paid subscription (converted) or by falling to Free."""
    with connection.cursor() as cursor:
        cursor.execute(_TRIALS_SQL, {"start": period.start, "as_of": period.as_of, "paying": list(PAYING_STATUSES)})
        ended, converted, running = cursor.fetchone()
    return Trials(ended=ended, converted=converted, running=running)
