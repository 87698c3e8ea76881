"""The business figures: one read for the staff dashboard and `billing_report`.

`figures(period)` gathers every section; `figures_data(figures)` is the same
figures as plain JSON-ready values (money as decimal strings in the currency's
units, credits as decimal strings, shares as percentages), which the command
prints and the tests compare with what the dashboard shows.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from django.utils import timezone

from backoffice.figures.selectors.credits import Credits, credit_flows
from backoffice.figures.selectors.health import Health, health_now
from backoffice.figures.selectors.patterns import Chart, Patterns, usage_patterns
from backoffice.figures.selectors.payments import Payments, payment_failures
from backoffice.figures.selectors.period import RECENT, Period, period_for
from backoffice.figures.selectors.revenue import (
    Movement,
    Revenue,
    Trials,
    mrr_cents,
    mrr_movement,
    trial_conversion,
)
from billing import money
from usage.units import credits_str

__all__ = [
    "RECENT", "Chart", "Credits", "Figures", "Health", "Movement", "Patterns", "Payments", "Period", "Revenue",
    "Trials", "credit_flows", "figures", "figures_data", "health_now", "mrr_cents", "mrr_movement", "payment_failures",
    "period_for", "trial_conversion", "usage_patterns",
]


@dataclass(frozen=True)
class Figures:
    period: Period
    revenue: Revenue
    trials: Trials
    payments: Payments
    credits: Credits
    patterns: Patterns
    health: Health
    currency: str


def figures(period: Period) -> Figures:
    return Figures(
        period=period, revenue=mrr_movement(period), trials=trial_conversion(period), payments=payment_failures(period),
        credits=credit_flows(period), patterns=usage_patterns(period), health=health_now(now=timezone.now()),
        currency=money.currency(),
    )


def _money(cents: int | Decimal | None) -> str | None:
    """Cents (exact or to the hundredth) as the currency's units, to the cent: 10248 -> "102.48"."""
    if cents is None:
        return None
    return str((Decimal(cents) / 100).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))


def _credits(micros: int | None) -> str | None:
    return None if micros is None else credits_str(micros)


def _percent(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def _movement(m: Movement) -> dict[str, Any]:
    return {"orgs": m.orgs, "mrr": _money(m.mrr_cents)}


def _chart(chart: Chart) -> dict[str, Any]:
    return {
        "days": [d.isoformat() for d in chart.days],
        "series": [{"key": s.key, "label": s.label, "credits": [credits_str(v) for v in s.values],
                    "total": credits_str(s.total_micros)} for s in chart.series],
    }


def figures_data(f: Figures) -> dict[str, Any]:
    r, t, p, c, u, h = f.revenue, f.trials, f.payments, f.credits, f.patterns, f.health
    return {
        "month": f.period.label,
        "as_of": f.period.as_of.isoformat(),
        "currency": f.currency,
        "mrr": {
            "mrr": _money(r.mrr_cents), "mrr_at_start": _money(r.mrr_start_cents),
            "customers": r.customers, "customers_at_start": r.customers_start,
            "movement": {
                "new": _movement(r.new), "expansion": _movement(r.expansion),
                "contraction": _movement(r.contraction), "churned": _movement(r.churned),
                "reactivated": _movement(r.reactivated), "net": _money(r.net_cents),
            },
        },
        "churn": {
            "customers_at_start": r.customers_start, "customers_lost": r.churned.orgs,
            "customer_churn_percent": _percent(r.customer_churn_percent),
            "mrr_at_start": _money(r.mrr_start_cents), "mrr_lost": _money(r.revenue_lost_cents),
            "revenue_churn_percent": _percent(r.revenue_churn_percent),
        },
        "trials": {"ended": t.ended, "converted": t.converted, "conversion_percent": _percent(t.conversion_percent),
                   "running": t.running},
        "payments_last_30_days": {
            "attempts": p.attempts, "failures": p.failures, "failure_percent": _percent(p.failure_percent),
            "invoices_paid": p.invoices_paid, "invoices_failed": p.invoices_failed,
            "topups_succeeded": p.topups_succeeded, "topups_failed": p.topups_failed,
            "recovered": p.recovered, "recovered_amount": _money(p.recovered_cents),
        },
        "credits": {
            "sold": _credits(c.sold_micros), "sold_amount": _money(c.sold_cents), "purchases": c.purchases,
            "granted_by_plans": _credits(c.plans_micros), "granted_by_plans_value": str(money.credits_value(c.plans_micros)),
            "granted_by_trials": _credits(c.trials_micros), "granted_as_promotions": _credits(c.promo_micros),
            "consumed": _credits(c.consumed_micros), "consumed_value": str(c.consumed_value),
            "expired": _credits(c.expired_micros), "expired_value": str(money.credits_value(c.expired_micros)),
            "clawed_back": _credits(c.clawed_back_micros),
            "clawed_back_value": str(money.credits_value(c.clawed_back_micros)),
            "outstanding": _credits(c.outstanding_micros), "outstanding_value": str(c.outstanding_value),
            "outstanding_paid": _credits(c.paid_outstanding_micros),
            "debt": _credits(c.debt_micros),
            "overage_billed": str(c.overage_credits), "overage_billed_amount": _money(c.overage_cents),
        },
        "usage_last_30_days": {
            "by_meter": _chart(u.by_meter), "by_model": _chart(u.by_model),
            "top_organizations": [{"org": o.slug, "name": o.name, "credits": credits_str(o.credits_micros)}
                                  for o in u.top_orgs],
            "flagged": [{"org": x.slug, "name": x.name, "occurrences": x.occurrences,
                         "last_at": x.last_at.isoformat(), "paused_keys": x.paused} for x in u.flagged],
        },
        "health": {
            "stripe_webhooks_24h": h.webhooks_24h, "stripe_webhooks_30d": h.webhooks_30d,
            "stripe_webhooks_failed_30d": h.webhooks_failed_30d,
            "stripe_webhooks_unprocessed": h.webhooks_unprocessed,
            "last_stripe_webhook_at": h.last_webhook_at.isoformat() if h.last_webhook_at else None,
            "last_stripe_webhook_age_seconds": int(h.last_webhook_age.total_seconds()) if h.last_webhook_age else None,
            "outbound_failed_30d": h.outbound_failed_30d, "outbound_retrying": h.outbound_retrying,
            "outbound_endpoints_failing": h.endpoints_failing, "outbound_endpoints_disabled": h.endpoints_disabled,
            "last_reconciliation_at": h.reconciled_at.isoformat() if h.reconciled_at else None,
            "last_reconciliation_drift": h.reconciliation_drift,
        },
    }
