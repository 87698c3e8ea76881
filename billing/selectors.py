"""Reads about plans, packs, an organization's subscription, invoices and credits.

The header indicator runs on every signed-in page, so `header_balance` is one
indexed row read (CreditAccount by its unique org_id) and nothing else.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal

from django.db.models import Q, QuerySet, TextChoices
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
from usage import selectors as ledger
from usage.selectors import BalanceStatus, balance_status
from usage.models import CreditAccount, Grant
from usage.units import credits_to_micros


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


# --- credits, for the pages ------------------------------------------------------

@dataclass(frozen=True)
class HeaderBalance:
    available_micros: int
    status: BalanceStatus


def header_balance(org_id: int) -> HeaderBalance:
    row = CreditAccount.objects.filter(org_id=org_id).values_list("balance_micros", "held_micros").first()
    available = row[0] - row[1] if row else 0
    return HeaderBalance(available, balance_status(available, ledger.low_balance_micros()))


# --- the overview --------------------------------------------------------------

# What one action of each size costs, in credits, until the rate card prices
# the action.small|medium|large|xl meters per plan (then read from there).
ACTION_TIERS: tuple[tuple[str, str, Decimal], ...] = (
    ("small", "Small", Decimal("1")),
    ("medium", "Medium", Decimal("2.5")),
    ("large", "Large", Decimal("5")),
    ("xl", "XL", Decimal("15")),
)


@dataclass(frozen=True)
class ActionEstimate:
    code: str
    label: str
    cost_micros: int
    count: int


def actions_affordable(available_micros: int) -> list[ActionEstimate]:
    """Roughly how many actions of each size the available credits still buy."""
    estimates = []
    for code, label, cost in ACTION_TIERS:
        cost_micros = credits_to_micros(cost)
        estimates.append(ActionEstimate(code, label, cost_micros, max(available_micros, 0) // cost_micros))
    return estimates


@dataclass(frozen=True)
class CreditsOverview:
    account: CreditAccount
    status: BalanceStatus
    low_threshold_micros: int
    grants: list[Grant]
    sendable_micros: int
    actions: list[ActionEstimate]

    @property
    def available_micros(self) -> int:
        return self.account.available_micros


def credits_overview(org_id: int) -> CreditsOverview:
    """Balance, holds, status, live grants and what the balance buys: a row
    read and one index scan of the (few) grants with credits left; nothing
    reads the ledger's entries, however many there are."""
    account = ledger.account_for(org_id)
    grants = ledger.live_grants(account=account)
    threshold = ledger.low_balance_micros()
    return CreditsOverview(
        account=account,
        status=balance_status(account.available_micros, threshold),
        low_threshold_micros=threshold,
        grants=grants,
        sendable_micros=ledger.sendable_micros(account=account, grants=grants),
        actions=actions_affordable(account.available_micros),
    )
