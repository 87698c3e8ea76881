"""The figures panel on the admin's front page (templates/backoffice/home/figures.html):
a few headline figures of this month, read by the same selectors as the page."""

from __future__ import annotations

from dataclasses import dataclass

from django import template
from django.utils import timezone

from backoffice.figures import selectors

register = template.Library()


@dataclass(frozen=True)
class Summary:
    period: selectors.Period
    revenue: selectors.Revenue
    payments: selectors.Payments
    health: selectors.Health


@register.simple_tag
def figures_summary() -> Summary:
    """MRR and its net movement, churn, payment failures and webhook health: the
    cheap sections (no usage scan), so the front page stays quick."""
    period = selectors.period_for(None)
    return Summary(period=period, revenue=selectors.mrr_movement(period), payments=selectors.payment_failures(period),
                   health=selectors.health_now(now=timezone.now()))
