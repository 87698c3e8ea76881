"""Plans on organizations: the sign-up trial, subscriptions as Stripe last
described them, the period allowance, the grace period after a failed
renewal, and Free.

Rules (docs/billing.md explains them for people):

* Sign-up starts a 7-day Starter trial without a card; its allowance is an
  expiring TRIAL grant. At the end the org falls to Free unless it subscribed.
* Each subscription period brings the plan's allowance once, expiring at the
  period's end; the previous period's allowance expires when the next starts.
* A failed renewal starts a grace period (7 days) during which the plan stays;
  paying in time restores everything. When grace ends, a beat task moves the
  org to Free (and Free's allowance). A later payment brings the plan back.
* Free renews its own small allowance every month.

Every function takes the org's billing lock first (state.lock_state), so
webhooks, tasks and pages changing one org run one after the other.
"""

from __future__ import annotations

import calendar
import logging
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import stripe
from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from djstripe import models as djstripe_models

from accounts.signups import SignedUp
from billing import gateway
from billing.models import AllowancePeriod, BillingState, BillingStatus, Interval, OveragePrice, Plan, PlanPrice
from billing.services.catalog import OVERAGE_PRODUCT_ID
from billing.services.state import lock_state, notify_billing_managers, org_for_customer
from billing.stripe_data import ENDED_STATUSES, InvoiceFacts, SubscriptionFacts, subscription_facts
from orgs.models import Organization
from orgs.services import audit_record
from usage import selectors as usage_selectors
from usage import services as usage_services
from usage.models import GrantSource
from usage.units import credits_str

if TYPE_CHECKING:
    from orgs.services import Actor

logger = logging.getLogger(__name__)

FREE = "free"


def add_months(moment: datetime, months: int) -> datetime:
    """The same day and time `months` later, clamped to the month's last day (Jan 31 -> Feb 28)."""
    month_index = moment.month - 1 + months
    year, month = moment.year + month_index // 12, month_index % 12 + 1
    return moment.replace(year=year, month=month, day=min(moment.day, calendar.monthrange(year, month)[1]))


def _day(moment: datetime) -> str:
    return f"{moment:%B} {moment.day}, {moment.year}"


def grace_period() -> timedelta:
    return timedelta(days=settings.BILLING_GRACE_DAYS)


def plan_get(code: str) -> Plan | None:
    return Plan.objects.filter(code=code).first()


def _free_price() -> PlanPrice | None:
    return PlanPrice.objects.select_related("plan").filter(plan__code=FREE, interval=Interval.MONTH).first()


def _set_plan(state: BillingState, plan_code: str, actor: Actor, *, overage_billed: bool = False) -> None:
    """The plan in force, told to the ledger (which prices usage and decides overage from it).

    Overage is allowed only where a subscription bills it (`overage_billed`):
    debt is settled on the ledger as soon as it is reported to the meter, so
    debt Stripe would not invoice is money written off.
    """
    plan = plan_get(plan_code)
    overage = bool(plan and plan.overage_allowed and overage_billed)
    if state.plan_code != plan_code:
        audit_record(org=state.org_id, action="billing.plan_changed", actor=actor,
                     data={"plan": plan_code, "previous": state.plan_code})
        state.plan_code = plan_code
    usage_services.account_set_plan(org=state.org, plan_code=plan_code, overage_allowed=overage, actor=actor)


# --- allowances ------------------------------------------------------------


def _expire_allowances(state: BillingState, *, keep: Q | None = None, reason: str, actor: Actor) -> int:
    """End the org's unspent plan allowances, except those `keep` matches."""
    periods = AllowancePeriod.objects.filter(org_id=state.org_id, grant__remaining_micros__gt=0)
    if keep is not None:
        periods = periods.exclude(keep)
    expired = 0
    for period in periods.select_related("grant__account"):
        if usage_services.grant_expire_now(grant=period.grant, reason=reason, actor=actor) is not None:
            expired += 1
    return expired


def _grant_allowance(
    state: BillingState, *, subscription_id: str, plan_price: PlanPrice, period_start: datetime,
    period_end: datetime, invoice_id: str = "", invoice_created_at: datetime | None = None, actor: Actor,
) -> AllowancePeriod | None:
    """Grant one period's allowance, once; the allowances it replaces expire."""
    now = timezone.now()
    plan_code = plan_price.plan.code
    existing = AllowancePeriod.objects.filter(
        subscription_id=subscription_id, period_end=period_end, plan_code=plan_code
    ).first()
    if existing is not None:
        return existing
    if period_end <= now:
        return None  # a period already over (a late, out-of-order invoice): nothing left to spend
    # A plan change within a period invoices the new plan for the rest of it;
    # if a later change's allowance is already here, this one is stale.
    if invoice_created_at and AllowancePeriod.objects.filter(
        org_id=state.org_id, period_end=period_end, invoice_created_at__gt=invoice_created_at
    ).exists():
        return None
    _expire_allowances(
        state, keep=Q(period_end__gt=period_end), reason="Replaced by the next period's allowance", actor=actor
    )
    grant = None
    if plan_price.allowance_micros > 0:
        entry = usage_services.credits_grant(
            org=state.org, amount_micros=plan_price.allowance_micros, source=GrantSource.PLAN_ALLOWANCE,
            idempotency_key=f"allowance:{subscription_id}:{plan_code}:{int(period_end.timestamp())}",
            expires_at=period_end, reference=f"{subscription_id}:{period_end.date().isoformat()}",
            stripe_object_id=invoice_id, reason=f"{plan_price.plan.name} allowance until {_day(period_end)}",
            actor=actor,
        )
        grant = entry.grant
    return AllowancePeriod.objects.create(
        org_id=state.org_id, subscription_id=subscription_id, plan_code=plan_code, period_start=period_start,
        period_end=period_end, invoice_id=invoice_id, invoice_created_at=invoice_created_at, grant=grant,
    )


def _start_free_period(state: BillingState, *, start: datetime, actor: Actor) -> None:
    price = _free_price()
    end = add_months(start, 1)
    state.interval = Interval.MONTH
    state.current_period_start, state.current_period_end = start, end
    if price is not None:
        _grant_allowance(state, subscription_id=f"free:{state.org_id}", plan_price=price,
                         period_start=start, period_end=end, actor=actor)


def _fall_to_free(state: BillingState, *, reason: str, actor: Actor) -> None:
    """Free from now: paid allowances end, Free's begins."""
    now = timezone.now()
    state.status = BillingStatus.FREE
    _set_plan(state, FREE, actor)
    _expire_allowances(state, reason=reason, actor=actor)
    _start_free_period(state, start=now, actor=actor)


# --- the sign-up trial and Free ----------------------------------------------


def trial_start_for_signup(event: SignedUp) -> None:
    """A sign-up receiver (registered in BillingConfig.ready): every new account
    starts with the sign-up trial; billing decides what it is."""
    trial_start(org=event.org, actor=event.user)


@transaction.atomic
def trial_start(*, org: Organization, actor: Actor = None) -> BillingState:
    """Start the sign-up trial (7 days of Starter, no card); once per org, ever."""
    state = lock_state(org.pk)
    if state.trial_ends_at is not None or state.subscription_id:
        return state
    plan = Plan.objects.filter(code=settings.BILLING_SIGNUP_TRIAL_PLAN, active=True, trial_days__gt=0).first()
    if plan is None:  # trials switched off: start on Free
        if state.current_period_end is None:
            _start_free_period(state, start=timezone.now(), actor=actor)
            state.save()
        return state
    now = timezone.now()
    ends = now + timedelta(days=plan.trial_days)
    state.status = BillingStatus.TRIALING
    state.trial_ends_at = ends
    state.interval = ""
    state.current_period_start, state.current_period_end = now, ends
    _set_plan(state, plan.code, actor)
    state.save()
    if plan.trial_allowance_micros:
        usage_services.credits_grant(
            org=org, amount_micros=plan.trial_allowance_micros, source=GrantSource.TRIAL,
            idempotency_key=f"trial:{org.pk}", expires_at=ends, reference=f"trial:{org.pk}",
            reason=f"{plan.name} trial", actor=actor,
        )
    audit_record(org=org, action="billing.trial_started", actor=actor,
                 data={"plan": plan.code, "ends_at": ends.isoformat(),
                       "allowance": credits_str(plan.trial_allowance_micros)})
    return state


def billing_state_for(org: Organization) -> BillingState:
    """The org's billing state; an org that never had one starts on Free."""
    state = BillingState.objects.filter(org=org).first()
    if state is not None and state.current_period_end is not None:
        return state
    with transaction.atomic():
        state = lock_state(org.pk)
        if state.current_period_end is None and state.status == BillingStatus.FREE and not state.subscription_id:
            _start_free_period(state, start=timezone.now(), actor="system")
            state.save()
    return state


def trials_end(*, now: datetime | None = None, limit: int = 500) -> int:
    """Orgs whose sign-up trial is over and who did not subscribe fall to Free."""
    now = now or timezone.now()
    due = list(
        BillingState.objects.filter(status=BillingStatus.TRIALING, trial_ends_at__lte=now, subscription_id="")
        .values_list("org_id", flat=True)[:limit]
    )
    ended = 0
    for org_id in due:
        with transaction.atomic():
            state = lock_state(org_id)
            if state.status != BillingStatus.TRIALING or state.subscription_id or state.trial_ends_at > now:
                continue  # subscribed, or already handled, while we were getting here
            # The trial's credits expire now rather than at the expiry task's next run,
            # so the balance shown right after is the Free one.
            for grant in usage_selectors.grants_unspent(org_id=org_id, source=GrantSource.TRIAL):
                usage_services.grant_expire_now(grant=grant, reason="Trial ended", actor="task:billing.trials_end")
            _fall_to_free(state, reason="Trial ended", actor="task:billing.trials_end")
            state.save()
            audit_record(org=org_id, action="billing.trial_ended", actor="task:billing.trials_end")
            notify_billing_managers(
                state.org, "Your trial has ended",
                "Your Starter trial has ended and your organization is now on the Free plan. "
                "Pick a plan any time to get your allowance back.",
            )
            ended += 1
    return ended


def free_periods_renew(*, now: datetime | None = None, limit: int = 500) -> int:
    """Start the next month of Free (and its allowance) where the last one ended,
    and give organizations that never had billing state their first."""
    now = now or timezone.now()
    renewed = 0
    for org in Organization.objects.filter(billing_state__isnull=True)[:limit]:
        billing_state_for(org)
        renewed += 1
    due = list(
        BillingState.objects.filter(status=BillingStatus.FREE, current_period_end__lte=now)
        .values_list("org_id", flat=True)[:limit]
    )
    for org_id in due:
        with transaction.atomic():
            state = lock_state(org_id)
            if state.status != BillingStatus.FREE or state.current_period_end is None or state.current_period_end > now:
                continue
            # Months missed while the task was down are not back-paid: the
            # allowance is for spending now.
            start = state.current_period_end
            while add_months(start, 1) <= now:
                start = add_months(start, 1)
            _start_free_period(state, start=start, actor="task:billing.free_periods_renew")
            state.save()
            renewed += 1
    return renewed


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
            _set_plan(state, plan.code, actor, overage_billed=_overage_item_ensure(state, facts, actor=actor))
        else:  # past_due / unpaid: the plan holds only through the grace period
            _start_grace(state, actor=actor)
            if state.grace_ends_at > now:
                state.status = BillingStatus.PAST_DUE
                _set_plan(state, plan.code, actor, overage_billed=_overage_item_ensure(state, facts, actor=actor))
            elif state.plan_code != FREE:
                _fall_to_free(state, reason="Grace period ended", actor=actor)
    elif facts.status in ENDED_STATUSES and current:
        state.subscription_status = facts.status
        state.cancel_at_period_end = False
        state.subscription_id = ""
        state.subscription_created_at = None
        _fall_to_free(state, reason="Subscription ended", actor=actor)
        state.grace_ends_at = None
        audit_record(org=state.org_id, action="billing.subscription_ended", actor=actor,
                     data={"subscription": facts.id, "status": facts.status})
    # Anything else (an incomplete first payment, an old subscription ending
    # after a newer one started) leaves the org as it is.
    state.save()
    return state


def _start_grace(state: BillingState, *, actor: Actor) -> None:
    if state.grace_ends_at is not None:
        return  # a second failure does not extend the grace period
    state.grace_ends_at = timezone.now() + grace_period()
    state.status = BillingStatus.PAST_DUE
    audit_record(org=state.org_id, action="billing.grace_started", actor=actor,
                 data={"ends_at": state.grace_ends_at.isoformat()})
    notify_billing_managers(
        state.org, "Your payment failed",
        f"We could not collect your renewal payment. Your plan stays active until "
        f"{_day(state.grace_ends_at)}; update your payment method before then to keep it.",
    )


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
    period = _grant_allowance(
        state, subscription_id=invoice.subscription_id, plan_price=invoice.plan_price,
        period_start=invoice.period_start or timezone.now(), period_end=invoice.period_end,
        invoice_id=invoice.id, invoice_created_at=invoice.created, actor=actor,
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
            _fall_to_free(state, reason="Grace period ended", actor="task:billing.grace_periods_end")
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
    _grant_allowance(state, subscription_id=sub_id, plan_price=plan_price, period_start=now, period_end=end,
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
