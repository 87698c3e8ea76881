"""Reads about plans, packs, an organization's subscription and invoices."""

from __future__ import annotations

import math
from dataclasses import dataclass

from django.db.models import Q, QuerySet
from django.utils import timezone
from djstripe import models as djstripe_models

from billing import gateway
from billing.models import (
    AutoTopUpSettings,
    BillingState,
    BillingStatus,
    Pack,
    Plan,
    PlanPrice,
    TopUpAttempt,
)
from billing_project.errors import NotFound
from orgs.models import Organization


def plans_active() -> QuerySet[Plan]:
    return Plan.objects.filter(active=True).prefetch_related("prices").order_by("sort_order", "code")


def packs_active() -> QuerySet[Pack]:
    return Pack.objects.filter(active=True).order_by("sort_order", "code")


def plan_price_for(*, price_id: str, product_id: str = "", interval: str = "") -> PlanPrice | None:
    """Our plan price behind a Stripe price: by id, else (a retired price whose
    lookup key moved on to its replacement) by its product and interval."""
    row = PlanPrice.objects.select_related("plan").filter(stripe_price_id=price_id).first() if price_id else None
    if row is not None:
        return row
    if price_id and not (product_id and interval):
        known = djstripe_models.Price.objects.filter(id=price_id).first()
        if known is not None:
            product_id = product_id or known.stripe_data.get("product") or ""
            interval = interval or (known.stripe_data.get("recurring") or {}).get("interval") or ""
    if isinstance(product_id, dict):
        product_id = product_id.get("id", "")
    if not (product_id and interval):
        return None
    return PlanPrice.objects.select_related("plan").filter(plan__stripe_product_id=product_id, interval=interval).first()


def plan_has_feature(plan_code: str, feature: str) -> bool:
    plan = Plan.objects.filter(code=plan_code).first()
    return bool(plan and feature in (plan.features or []))


def org_has_feature(org: Organization, feature: str) -> bool:
    """Feature gating: does the plan in force unlock `feature`?"""
    state = BillingState.objects.filter(org=org).only("plan_code").first()
    return plan_has_feature(state.plan_code if state else "free", feature)


@dataclass(frozen=True)
class Subscription:
    state: BillingState
    plan: Plan | None
    price: PlanPrice | None
    trial_days_left: int | None
    stripe_configured: bool
    simulated: bool


def subscription_for(org: Organization, state: BillingState) -> Subscription:
    plan = Plan.objects.filter(code=state.plan_code).first()
    price = None
    if plan is not None:
        price = plan.prices.filter(interval=state.interval or "month").first()
    days_left = None
    if state.status == BillingStatus.TRIALING and state.trial_ends_at:
        # Whole days, rounded up: a trial that ends in 6.9 days has 7 left.
        days_left = max(0, math.ceil((state.trial_ends_at - timezone.now()).total_seconds() / 86400))
    return Subscription(state=state, plan=plan, price=price, trial_days_left=days_left,
                        stripe_configured=gateway.configured(), simulated=gateway.simulated())


def invoices_for(org: Organization, *, limit: int = 20, starting_after: str | None = None) -> list[djstripe_models.Invoice]:
    """The org's Stripe invoices (synced by dj-stripe from the webhooks), newest first.
    `starting_after` is the last invoice id of the previous page; another org's id is a 404."""
    state = BillingState.objects.filter(org=org).first()
    if state is None or not state.customer_id:
        if starting_after:
            raise NotFound("No such invoice.", code="invoice_not_found")
        return []
    invoices = djstripe_models.Invoice.objects.filter(customer__id=state.customer_id).order_by("-created", "-djstripe_id")
    if starting_after:
        anchor = invoices.filter(id=starting_after).first()
        if anchor is None:
            raise NotFound("No such invoice.", code="invoice_not_found")
        invoices = invoices.filter(
            Q(created__lt=anchor.created) | Q(created=anchor.created, djstripe_id__lt=anchor.djstripe_id)
        )
    return list(invoices[:limit])


def auto_topup_for(org: Organization) -> AutoTopUpSettings | None:
    return AutoTopUpSettings.objects.select_related("pack").filter(org=org).first()


def topup_attempts_for(org: Organization, limit: int = 20) -> QuerySet[TopUpAttempt]:
    return TopUpAttempt.objects.filter(org=org).select_related("pack").order_by("-created_at")[:limit]
