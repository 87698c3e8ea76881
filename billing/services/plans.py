"""Plans on organizations: the sign-up trial, Free, and the period allowance
every plan brings (subscriptions themselves: billing.services.subscriptions).

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

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from accounts.signups import SignedUp
from orgs.creations import OrgCreated
from billing.models import AllowancePeriod, BillingState, BillingStatus, Interval, Plan, PlanPrice
from billing.services.state import lock_state, notify_billing_managers
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


def day_label(moment: datetime) -> str:
    return f"{moment:%B} {moment.day}, {moment.year}"


def grace_period() -> timedelta:
    return timedelta(days=settings.BILLING_GRACE_DAYS)


def plan_get(code: str) -> Plan | None:
    return Plan.objects.filter(code=code).first()


def free_price() -> PlanPrice | None:
    return PlanPrice.objects.select_related("plan").filter(plan__code=FREE, interval=Interval.MONTH).first()


def plan_apply(state: BillingState, plan_code: str, actor: Actor, *, overage_billed: bool = False) -> None:
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
    usage_services.account_set_plan(
        org=state.org, plan_code=plan_code, overage_allowed=overage, features=plan.features if plan else [], actor=actor
    )


# --- allowances ------------------------------------------------------------


def allowances_expire(state: BillingState, *, keep: Q | None = None, reason: str, actor: Actor) -> int:
    """End the org's unspent plan allowances, except those `keep` matches."""
    periods = AllowancePeriod.objects.filter(org_id=state.org_id, grant__remaining_micros__gt=0)
    if keep is not None:
        periods = periods.exclude(keep)
    expired = 0
    for period in periods.select_related("grant__account"):
        if usage_services.grant_expire_now(grant=period.grant, reason=reason, actor=actor) is not None:
            expired += 1
    return expired


def allowance_grant(
    state: BillingState, *, subscription_id: str, plan_price: PlanPrice, period_start: datetime,
    period_end: datetime, invoice_id: str = "", invoice_created_at: datetime | None = None, actor: Actor,
    amount_paid_cents: int | None = None, discount_cents: int = 0, promotion_code: str = "",
) -> AllowancePeriod | None:
    """Grant one period's allowance, once; the allowances it replaces expire.
    The allowance is the plan's whatever was paid: a promotion lowers the
    invoice (recorded here for staff), never the credits."""
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
    allowances_expire(
        state, keep=Q(period_end__gt=period_end), reason="Replaced by the next period's allowance", actor=actor
    )
    grant = None
    if plan_price.allowance_micros > 0:
        entry = usage_services.credits_grant(
            org=state.org, amount_micros=plan_price.allowance_micros, source=GrantSource.PLAN_ALLOWANCE,
            idempotency_key=f"allowance:{subscription_id}:{plan_code}:{int(period_end.timestamp())}",
            expires_at=period_end, reference=f"{subscription_id}:{period_end.date().isoformat()}",
            stripe_object_id=invoice_id, reason=f"{plan_price.plan.name} allowance until {day_label(period_end)}",
            actor=actor,
        )
        grant = entry.grant
    return AllowancePeriod.objects.create(
        org_id=state.org_id, subscription_id=subscription_id, plan_code=plan_code, period_start=period_start,
        period_end=period_end, invoice_id=invoice_id, invoice_created_at=invoice_created_at, grant=grant,
        amount_paid_cents=amount_paid_cents, discount_cents=max(0, discount_cents), promotion_code=promotion_code[:255],
    )


def free_period_start(state: BillingState, *, start: datetime, actor: Actor) -> None:
    price = free_price()
    end = add_months(start, 1)
    state.interval = Interval.MONTH
    state.current_period_start, state.current_period_end = start, end
    if price is not None:
        allowance_grant(state, subscription_id=f"free:{state.org_id}", plan_price=price,
                         period_start=start, period_end=end, actor=actor)


def plan_fall_to_free(state: BillingState, *, reason: str, actor: Actor) -> None:
    """Free from now: paid allowances end, Free's begins."""
    now = timezone.now()
    state.status = BillingStatus.FREE
    plan_apply(state, FREE, actor)
    allowances_expire(state, reason=reason, actor=actor)
    free_period_start(state, start=now, actor=actor)


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
            free_period_start(state, start=timezone.now(), actor=actor)
            state.save()
        return state
    now = timezone.now()
    ends = now + timedelta(days=plan.trial_days)
    state.status = BillingStatus.TRIALING
    state.trial_ends_at = ends
    state.interval = ""
    state.current_period_start, state.current_period_end = now, ends
    plan_apply(state, plan.code, actor)
    state.save()
    # A team organization starts on Free with its allowance; the trial takes
    # Free's place, so that allowance ends rather than being spent beside it.
    allowances_expire(state, reason="Replaced by the trial", actor=actor)
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


def free_start_for_new_org(event: OrgCreated) -> None:
    """An organization-created receiver (registered in BillingConfig.ready): a
    team organization starts on Free with this month's allowance at once, not
    at the hourly renewal's next run. A personal organization is left to the
    sign-up trial, which follows in the same transaction (one grant, not two)."""
    if event.org.is_personal:
        return
    free_start(org=event.org, actor=event.owner)


@transaction.atomic
def free_start(*, org: Organization, actor: Actor = None) -> BillingState:
    """Put an organization that has no plan yet on Free, with its first period's
    allowance; an org that already has one (a period, a trial, a subscription)
    is left as it is."""
    state = lock_state(org.pk)
    if state.current_period_end is None and state.status == BillingStatus.FREE and not state.subscription_id:
        free_period_start(state, start=timezone.now(), actor=actor)
        state.save()
    return state


def billing_state_for(org: Organization) -> BillingState:
    """The org's billing state; an org that never had one starts on Free."""
    state = BillingState.objects.filter(org=org).first()
    if state is not None and state.current_period_end is not None:
        return state
    return free_start(org=org, actor="system")


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
            plan_fall_to_free(state, reason="Trial ended", actor="task:billing.trials_end")
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
            free_period_start(state, start=start, actor="task:billing.free_periods_renew")
            state.save()
            renewed += 1
    return renewed
