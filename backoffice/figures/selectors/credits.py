"""Credits in the month: sold, granted, consumed, expired, clawed back; what is
outstanding (the liability: credits customers hold and may still spend); and
overage billed.

Read from the ledger (entries and grants of the month, through the BRIN
indexes on their `created_at`), purchases and overage reports. Credits are
micro-credits; money is cents, paid amounts as charged before tax, credits
valued at the list price (`billing.money`).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from django.db import connection

from backoffice.figures.selectors.period import Period
from billing import money


@dataclass(frozen=True)
class Credits:
    sold_micros: int  # purchases and auto top-ups
    sold_cents: int  # what they were paid, before tax
    purchases: int
    plans_micros: int  # plan allowances
    trials_micros: int
    promo_micros: int  # promotions, adjustments and other free grants
    consumed_micros: int
    expired_micros: int
    clawed_back_micros: int
    outstanding_micros: int  # positive balances at the period's moment
    paid_outstanding_micros: int | None  # of which bought (None for a past month)
    debt_micros: int | None  # usage past zero not yet covered (None for a past month)
    overage_credits: int  # whole credits reported to Stripe's meter
    overage_cents: Decimal

    @property
    def outstanding_value(self) -> Decimal:
        return money.credits_value(self.outstanding_micros)

    @property
    def consumed_value(self) -> Decimal:
        return money.credits_value(self.consumed_micros)


_ENTRIES_SQL = """
SELECT coalesce(-sum(amount_micros) FILTER (WHERE kind = 'usage'), 0),
       coalesce(-sum(amount_micros) FILTER (WHERE kind = 'expiry'), 0),
       coalesce(-sum(amount_micros) FILTER (WHERE kind = 'clawback'), 0)
FROM usage_ledgerentry WHERE created_at >= %(start)s AND created_at < %(as_of)s
"""

_GRANTS_SQL = """
SELECT coalesce(sum(amount_micros) FILTER (WHERE source IN ('purchase', 'auto_topup')), 0),
       coalesce(sum(amount_micros) FILTER (WHERE source = 'plan_allowance'), 0),
       coalesce(sum(amount_micros) FILTER (WHERE source = 'trial'), 0),
       coalesce(sum(amount_micros) FILTER (WHERE source IN ('promo', 'adjustment')), 0)
FROM usage_grant WHERE created_at >= %(start)s AND created_at < %(as_of)s
"""

_PURCHASES_SQL = """
SELECT count(*), coalesce(sum(amount_cents), 0) FROM billing_purchase
WHERE created_at >= %(start)s AND created_at < %(as_of)s
"""

# Overage is priced per the subscription's interval (billing.OveragePrice).
_OVERAGE_SQL = """
SELECT coalesce(sum(r.credits), 0), coalesce(sum(r.credits * coalesce(p.cents_per_credit, 0)), 0)
FROM billing_overagereport r
LEFT JOIN billing_billingstate s ON s.org_id = r.org_id
LEFT JOIN billing_overageprice p ON p."interval" = coalesce(nullif(s."interval", ''), 'month')
WHERE r.sent_at >= %(start)s AND r.sent_at < %(as_of)s
"""

_NOW_OUTSTANDING_SQL = """
SELECT coalesce(sum(greatest(balance_micros, 0)), 0), coalesce(sum(debt_micros), 0) FROM usage_creditaccount
"""

_PAID_OUTSTANDING_SQL = """
SELECT coalesce(sum(remaining_micros), 0) FROM usage_grant
WHERE source IN ('purchase', 'auto_topup') AND remaining_micros > 0 AND (expires_at IS NULL OR expires_at > %(as_of)s)
"""

# A past month's liability: each account's balance after its last entry before
# the month ended (one probe of the (account, -created_at, -id) index each).
_PAST_OUTSTANDING_SQL = """
SELECT coalesce(sum(greatest(last.balance_after_micros, 0)), 0)
FROM usage_creditaccount a
CROSS JOIN LATERAL (
    SELECT e.balance_after_micros FROM usage_ledgerentry e
    WHERE e.account_id = a.id AND e.created_at < %(as_of)s ORDER BY e.created_at DESC, e.id DESC LIMIT 1
) last
"""


def credit_flows(period: Period) -> Credits:
    params = {"start": period.start, "as_of": period.as_of}
    with connection.cursor() as cursor:
        cursor.execute(_ENTRIES_SQL, params)
        consumed, expired, clawed = cursor.fetchone()
        cursor.execute(_GRANTS_SQL, params)
        sold, plans, trials, promo = cursor.fetchone()
        cursor.execute(_PURCHASES_SQL, params)
        purchases, sold_cents = cursor.fetchone()
        cursor.execute(_OVERAGE_SQL, params)
        overage_credits, overage_cents = cursor.fetchone()
        if period.running:
            cursor.execute(_NOW_OUTSTANDING_SQL)
            outstanding, debt = cursor.fetchone()
            cursor.execute(_PAID_OUTSTANDING_SQL, params)
            (paid_outstanding,) = cursor.fetchone()
        else:
            cursor.execute(_PAST_OUTSTANDING_SQL, params)
            (outstanding,) = cursor.fetchone()
            debt = paid_outstanding = None
    return Credits(
        sold_micros=int(sold), sold_cents=int(sold_cents), purchases=purchases, plans_micros=int(plans),
        trials_micros=int(trials), promo_micros=int(promo), consumed_micros=int(consumed),
        expired_micros=int(expired), clawed_back_micros=int(clawed), outstanding_micros=int(outstanding),
        paid_outstanding_micros=None if paid_outstanding is None else int(paid_outstanding),
        debt_micros=None if debt is None else int(debt),
        overage_credits=int(overage_credits), overage_cents=Decimal(overage_cents).quantize(Decimal("0.01")),
    )
