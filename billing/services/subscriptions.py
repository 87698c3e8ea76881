"""Subscriptions as Stripe last described them: the plan in force, each paid
period's allowance, a failed renewal's grace period, and the demo's simulated
subscription. The rules are in billing.services.plans' notes and docs/billing.md.

Every function takes the org's billing lock first (state.lock_state), so
webhooks, tasks and pages changing one org run one after the other.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import TYPE_CHECKING

import stripe
from django.db import transaction
from django.utils import timezone
from djstripe import models as djstripe_models

from billing import gateway
from billing.models import AllowancePeriod, BillingState, BillingStatus, Interval, OveragePrice, PlanPrice
from billing.services import platform_events
from billing.services.catalog import OVERAGE_PRODUCT_ID
from billing.services.notices import payment_failed_send
from billing.services.promotions import promotion_label
from billing.services.plans import (
    FREE,
    add_months,
    allowance_grant,
    grace_period,
    plan_apply,
    plan_fall_to_free,
)
from billing.services.state import lock_state, notify_billing_managers, org_for_customer
from billing.stripe_data import ENDED_STATUSES, InvoiceFacts, SubscriptionFacts, subscription_facts
from orgs.models import Organization
from orgs.services import audit_record

if TYPE_CHECKING:
    from orgs.services import Actor

logger = logging.getLogger(__name__)


# --- subscriptions, as Stripe last described them -------------------------------


def _overage_item_ensure(state: BillingState, facts: SubscriptionFacts, *, actor: Actor) -> bool:
    """Whether the org's subscription bills overage, adding the metered item if
    its plan allows overage and the item is missing.

    Checkout adds the item with the plan, but a plan change in the portal only
    swaps the plan's item, so an upgrade to an overage plan arrives here
    without it. Runs under the org's lock for the subscription that rules only
    (the meter counts per customer: a second subscription carrying the price
    would bill the same usage twice). A plan without overage keeps an item it
    has: usage already reported this period is still to be invoiced on it.
    """
    plan = facts.plan_price.plan
    if not plan.overage_allowed:
        return False
    if facts.id.startswith("sim_"):
        return True  # the demo's simulated subscription: nothing is reported to Stripe
    overage = OveragePrice.objects.filter(interval=facts.plan_price.interval).exclude(stripe_price_id="").first()
    if any(product_id == OVERAGE_PRODUCT_ID or (overage and price_id == overage.stripe_price_id)
           for price_id, product_id in facts.item_prices):
        return True  # the current price, or a retired one that still bills the meter
    if overage is None:
        logger.warning("No overage price in Stripe for %s; subscription %s holds %s at zero.",
                       facts.plan_price.interval, facts.id, plan.code)
        return False
    try:
        item = stripe.SubscriptionItem.create(
            subscription=facts.id, price=overage.stripe_price_id,
            **gateway.options(idempotency_key=f"tollgate-overage-item-{facts.id}-{overage.stripe_price_id}"),
        )
    except stripe.StripeError:
        # Not a reason to refuse the plan: the org is held at zero until a later
        # event about the subscription adds the item.
        logger.exception("Could not add the overage price to subscription %s.", facts.id)
        return False
    audit_record(org=state.org_id, action="billing.overage_item_added", actor=actor,
                 data={"subscription": facts.id, "item": item["id"], "price": overage.stripe_price_id})
    return True


def _apply_subscription(state: BillingState, facts: SubscriptionFacts, *, actor: Actor) -> BillingState:
    now = timezone.now()
    current = state.subscription_id == facts.id
    if facts.live and facts.plan_price is not None:
        newer_current = (
            not current and state.subscription_id and state.subscription_status in ("active", "trialing", "past_due")
            and state.subscription_created_at and facts.created and facts.created < state.subscription_created_at
        )
        if newer_current:
            return state  # an older subscription of this org; the newer one rules
        plan = facts.plan_price.plan
        state.subscription_id = facts.id
        state.subscription_status = facts.status
        state.subscription_created_at = facts.created
        state.interval = facts.plan_price.interval
        state.current_period_start = facts.current_period_start
        state.current_period_end = facts.current_period_end
        state.cancel_at_period_end = facts.cancel_at_period_end
        if facts.status == "trialing":
            state.trial_ends_at = facts.trial_end
        if facts.status in ("active", "trialing"):
            if state.status == BillingStatus.PAST_DUE or state.grace_ends_at:
                audit_record(org=state.org_id, action="billing.grace_resolved", actor=actor, data={"subscription": facts.id})
            state.status = BillingStatus.TRIALING if facts.status == "trialing" else BillingStatus.ACTIVE
            state.grace_ends_at = None
            plan_apply(state, plan.code, actor, overage_billed=_overage_item_ensure(state, facts, actor=actor))
        else:  # past_due / unpaid: the plan holds only through the grace period
            _start_grace(state, actor=actor)
            if state.grace_ends_at > now:
                state.status = BillingStatus.PAST_DUE
                plan_apply(state, plan.code, actor, overage_billed=_overage_item_ensure(state, facts, actor=actor))
            elif state.plan_code != FREE:
                plan_fall_to_free(state, reason="Grace period ended", actor=actor)
    elif facts.status in ENDED_STATUSES and current:
        state.subscription_status = facts.status
        state.cancel_at_period_end = False
        state.subscription_id = ""
        state.subscription_created_at = None
        plan_fall_to_free(state, reason="Subscription ended", actor=actor)
        state.grace_ends_at = None
        audit_record(org=state.org_id, action="billing.subscription_ended", actor=actor,
                     data={"subscription": facts.id, "status": facts.status})
    else:
        # Anything else (an incomplete first payment, an old subscription ending
        # after a newer one started) leaves the org as it is.
        state.save()
        return state
    state.save()
    platform_events.subscription_updated(state)
    return state


def _start_grace(state: BillingState, *, actor: Actor) -> None:
    if state.grace_ends_at is not None:
        return  # a second failure does not extend the grace period
    state.grace_ends_at = timezone.now() + grace_period()
    state.status = BillingStatus.PAST_DUE
    audit_record(org=state.org_id, action="billing.grace_started", actor=actor,
                 data={"ends_at": state.grace_ends_at.isoformat()})
    payment_failed_send(state)


def _refresh(state: BillingState, subscription_id: str, *, actor: Actor) -> BillingState | None:
    """Under the org's lock: Stripe's current subscription, synced into dj-stripe and applied."""
    with gateway.translated_errors("read the subscription"):
        remote = stripe.Subscription.retrieve(subscription_id, **gateway.options())
        # dj-stripe syncs from the stripe-python object (it pages through the items).
        djstripe_models.Subscription.sync_from_stripe_data(remote, api_key=gateway.api_key())
    facts = subscription_facts(gateway.to_dict(remote))
    if org_for_customer(facts.customer_id, facts.metadata) not in (None, state.org):
        return None  # not this org's subscription
    return _apply_subscription(state, facts, actor=actor)


@transaction.atomic
def subscription_refresh(*, subscription_id: str, customer_id: str = "", metadata: dict | None = None,
                         actor: Actor = "stripe") -> BillingState | None:
    """Fetch the subscription from Stripe under the org's lock and apply it.

    Events arrive duplicated and in any order, and their payloads may be
    stale; reading Stripe's current object while holding the lock means the
    last writer always applies Stripe's latest state.
    """
    org = org_for_customer(customer_id, metadata)
    if org is None:
        logger.warning("Subscription %s belongs to no organization we know; ignored.", subscription_id)
        return None
    return _refresh(lock_state(org.pk), subscription_id, actor=actor)


@transaction.atomic
def invoice_paid(*, invoice: InvoiceFacts, actor: Actor = "stripe") -> AllowancePeriod | None:
    """A paid subscription invoice grants the period's allowance, once.

    The subscription is re-read first: a payment after a failure makes it
    active again (its own event may come later), and an invoice that arrives
    before the subscription's created event still finds its plan. Only the
    org's current subscription earns allowances (not a late invoice of one
    that has since been canceled).
    """
    if not invoice.subscription_id or invoice.plan_price is None or invoice.period_end is None:
        return None  # a pack's receipt, or an invoice of usage only: nothing to grant
    org = org_for_customer(invoice.customer_id, invoice.metadata)
    if org is None:
        return None
    state = lock_state(org.pk)
    state = _refresh(state, invoice.subscription_id, actor=actor) or state
    if state.subscription_id != invoice.subscription_id:
        return None
    platform_events.invoice_paid(org.pk, invoice)
    if state.status == BillingStatus.TRIALING and state.trial_ends_at and invoice.period_end <= state.trial_ends_at:
        # The $0 invoice of a subscription's trial days (kept from the sign-up
        # trial): the trial's own credits are the allowance until it ends.
        return None
    period = allowance_grant(
        state, subscription_id=invoice.subscription_id, plan_price=invoice.plan_price,
        period_start=invoice.period_start or timezone.now(), period_end=invoice.period_end,
        invoice_id=invoice.id, invoice_created_at=invoice.created, actor=actor,
        amount_paid_cents=invoice.amount_paid_cents, discount_cents=invoice.discount_cents,
        promotion_code=promotion_label(invoice.promotions) if invoice.promotions else "",
    )
    state.save()
    return period


@transaction.atomic
def invoice_payment_failed(*, invoice: InvoiceFacts, actor: Actor = "stripe") -> BillingState | None:
    """A failed renewal of the org's subscription starts the grace period (once)."""
    if not invoice.subscription_id or invoice.status == "paid":
        return None  # paid since (events out of order), or not a subscription's invoice
    org = org_for_customer(invoice.customer_id, invoice.metadata)
    if org is None:
        return None
    state = lock_state(org.pk)
    if state.subscription_id != invoice.subscription_id or state.status not in (BillingStatus.ACTIVE, BillingStatus.PAST_DUE):
        return state  # a first payment that failed (no plan yet), or another subscription
    _start_grace(state, actor=actor)
    state.save()
    platform_events.invoice_payment_failed(org.pk, invoice, state)
    return state


def grace_periods_end(*, now: datetime | None = None, limit: int = 500) -> int:
    """Move orgs whose grace period is over to Free. Safe to run twice or to be
    killed half-way: each org is its own transaction that re-checks under the lock."""
    now = now or timezone.now()
    due = list(
        BillingState.objects.filter(status=BillingStatus.PAST_DUE, grace_ends_at__lte=now)
        .values_list("org_id", flat=True)[:limit]
    )
    downgraded = 0
    for org_id in due:
        with transaction.atomic():
            state = lock_state(org_id)
            if state.status != BillingStatus.PAST_DUE or state.grace_ends_at is None or state.grace_ends_at > now:
                continue  # paid in the meantime
            previous = state.plan_code
            plan_fall_to_free(state, reason="Grace period ended", actor="task:billing.grace_periods_end")
            state.save()
            audit_record(org=org_id, action="billing.downgraded", actor="task:billing.grace_periods_end",
                         data={"from": previous, "reason": "grace_period_ended"})
            notify_billing_managers(
                state.org, "Your plan was downgraded",
                f"We could not collect your payment during the grace period, so your organization moved "
                f"from {previous.title()} to the Free plan. Pay the open invoice or choose a plan to restore it.",
            )
            downgraded += 1
    return downgraded


# --- the demo's simulated subscription ------------------------------------------


@transaction.atomic
def plan_simulate_subscribe(*, org: Organization, plan_price: PlanPrice, actor: Actor = None) -> BillingState:
    """The embedded demo's "subscribe" without Stripe: the same subscription and
    allowance services a real subscription's webhooks run, with made-up ids."""
    state = lock_state(org.pk)
    now = timezone.now()
    end = add_months(now, 12 if plan_price.interval == Interval.YEAR else 1)
    sub_id = f"sim_sub_{org.pk}_{int(now.timestamp())}"
    facts = SubscriptionFacts(
        id=sub_id, customer_id="", status="active", plan_price=plan_price, created=now,
        current_period_start=now, current_period_end=end, trial_end=None, cancel_at_period_end=False, metadata={},
    )
    _apply_subscription(state, facts, actor=actor)
    allowance_grant(state, subscription_id=sub_id, plan_price=plan_price, period_start=now, period_end=end,
                     invoice_id=f"sim_in_{org.pk}_{int(now.timestamp())}", invoice_created_at=now, actor=actor)
    state.save()
    return state


@transaction.atomic
def plan_simulate_cancel(*, org: Organization, actor: Actor = None) -> BillingState:
    """The embedded demo's "cancel": its simulated subscription ends now and the org moves to Free."""
    state = lock_state(org.pk)
    if not state.subscription_id.startswith("sim_"):
        return state
    facts = SubscriptionFacts(
        id=state.subscription_id, customer_id="", status="canceled", plan_price=None,
        created=state.subscription_created_at, current_period_start=state.current_period_start,
        current_period_end=state.current_period_end, trial_end=None, cancel_at_period_end=False, metadata={},
    )
    return _apply_subscription(state, facts, actor=actor)
