"""Reads about plans, packs, an organization's subscription, invoices and credits.

The header indicator runs on every signed-in page, so `header_balance` is one
indexed row read (CreditAccount by its unique org_id) and nothing else.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime

from django.db.models import Count, Q, QuerySet, Sum
from django.utils import timezone
from djstripe import models as djstripe_models

from accounts import selectors as account_selectors
from billing import gateway
from billing.models import (
    OPEN_ATTEMPT_STATUSES,
    AllowancePeriod,
    AttemptStatus,
    AutoTopUpSettings,
    BillingState,
    BillingStatus,
    DriftKind,
    Pack,
    Plan,
    PlanPrice,
    Purchase,
    ReconciliationFinding,
    ReconciliationRun,
    TopUpAttempt,
)
from billing_project.errors import InvalidRequest, NotFound
from orgs import entitlements as org_entitlements
from orgs import selectors as org_selectors
from orgs.entitlements import FeatureNotInPlan, PlanOffer
from orgs.models import Organization
from usage import selectors as usage_selectors
from usage.selectors import BalanceStatus, balance_status
from usage.models import CreditAccount, Grant, GrantSource
from usage.services.rates import current_card
from usage.units import charge_micros


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


def org_has_feature(org: Organization | int, feature: str) -> bool:
    """Feature gating: does the plan in force unlock `feature`?"""
    return plan_has_feature(plan_code_of(org), feature)


def plan_code_of(org: Organization | int) -> str:
    """The plan in force (Free before billing has a state for the org)."""
    org_id = org if isinstance(org, int) else org.pk
    return BillingState.objects.filter(org_id=org_id).values_list("plan_code", flat=True).first() or "free"


# --- entitlements: features and the limits plans carry ---------------------------------

# How the pages and refusals name each feature, and what it unlocks. A feature
# the catalog lists without an entry here reads as its code, capitalised.
# Features are the platform's to honour (it asks POST /entitlements/check);
# Tollgate itself enforces media_generation (gated meters) and the plan's
# member and API key caps, which are its own keys, not the platform's API.
FEATURE_LABELS = {
    "basic_workflows": "Basic workflows",
    "advanced_workflows": "Advanced workflows",
    "api_access": "API access",
    "media_generation": "Image, speech and video generation",
    "team_members": "Team collaboration",
    "overage": "Keeps running past zero (billed in arrears)",
    "priority_processing": "Priority processing",
}
FEATURE_DESCRIPTIONS = {
    "basic_workflows": "Run the small and medium actions most workflows are made of.",
    "advanced_workflows": "Longer, multi-step workflows and agent runs.",
    "api_access": "Use the platform's API from your own code.",
    "media_generation": "Record usage on the image, text-to-speech and video meters.",
    "team_members": "Shared team workflows, with each member's usage reported.",
    "overage": "Work keeps going when credits run out; the excess is on the next invoice.",
    "priority_processing": "Your platform runs your work ahead of the queue.",
}


def feature_label(feature: str) -> str:
    return FEATURE_LABELS.get(feature, feature.replace("_", " ").capitalize())


def features_known() -> list[str]:
    """Every feature code some active plan lists or the pages describe, in the catalog's order."""
    known = list(FEATURE_LABELS)
    for plan in plans_active():
        known += [f for f in plan.features or [] if f not in known]
    return known


def plan_limit(plan: Plan | None, resource: str) -> int | None:
    """The plan's cap on `resource` (members, api_keys); None: no cap (or no such plan)."""
    if plan is None:
        return None
    return {org_entitlements.MEMBERS: plan.members_limit, org_entitlements.API_KEYS: plan.api_keys_limit}[resource]


def _year_cents(plan: Plan) -> int:
    """What a year of the plan costs at its cheapest active price, to compare plans."""
    prices = [p.amount_cents * (12 if p.interval == "month" else 1) for p in plan.prices.all() if p.active]
    return min(prices, default=0)


def plans_by_price() -> list[Plan]:
    """Active plans, cheapest first (then in the catalog's order)."""
    return sorted(plans_active(), key=lambda p: (_year_cents(p), p.sort_order, p.code))


def cheapest_plan_with_feature(feature: str) -> Plan | None:
    return next((p for p in plans_by_price() if feature in (p.features or [])), None)


def cheapest_plan_allowing(resource: str, count: int) -> Plan | None:
    """The cheapest active plan whose cap on `resource` allows `count` of it."""
    return next((p for p in plans_by_price() if plan_limit(p, resource) is None or plan_limit(p, resource) >= count),
                None)


def _offer(plan: Plan | None) -> PlanOffer | None:
    return PlanOffer(plan.code, plan.name) if plan is not None else None


class PlanAnswers:
    """Billing's answers to orgs.entitlements, for the apps below billing that
    meet a plan's limits and features (registered in BillingConfig.ready)."""

    def limit(self, org_id: int, resource: str) -> int | None:
        return plan_limit(Plan.objects.filter(code=plan_code_of(org_id)).first(), resource)

    def plan_of(self, org_id: int) -> PlanOffer | None:
        code = plan_code_of(org_id)
        return _offer(Plan.objects.filter(code=code).first()) or PlanOffer(code, code.title())

    def cheapest_with_feature(self, feature: str) -> PlanOffer | None:
        return _offer(cheapest_plan_with_feature(feature))

    def cheapest_allowing(self, resource: str, count: int) -> PlanOffer | None:
        return _offer(cheapest_plan_allowing(resource, count))

    def feature_label(self, feature: str) -> str:
        return feature_label(feature)


@dataclass(frozen=True)
class LimitUse:
    """One count the plan may cap, and how much of it the org uses."""

    resource: str
    limit: int | None
    used: int
    pending: int = 0  # members: invitations still open, which hold a seat each

    @property
    def remaining(self) -> int | None:
        return None if self.limit is None else max(0, self.limit - self.used - self.pending)


@dataclass(frozen=True)
class CreditsUse:
    available_micros: int
    balance_micros: int
    held_micros: int
    overage_allowed: bool
    allowance: Allowance | None


@dataclass(frozen=True)
class GatedMeter:
    code: str
    name: str
    required_feature: str
    allowed: bool


@dataclass(frozen=True)
class Entitlements:
    """What the org's plan in force allows, and what it uses of it: the one read
    behind GET /api/v1/entitlements (and, later, the MCP tool of that name)."""

    plan_code: str
    plan: Plan | None
    status: str
    features: list[str]
    credits: CreditsUse
    limits: list[LimitUse]
    meters: list[GatedMeter]

    @property
    def plan_name(self) -> str:
        return self.plan.name if self.plan is not None else self.plan_code.title()

    def limit(self, resource: str) -> LimitUse:
        return next(limit for limit in self.limits if limit.resource == resource)


def entitlements(org: Organization) -> Entitlements:
    state = billing_state_of(org)
    plan = Plan.objects.filter(code=state.plan_code).first()
    features = list(plan.features or []) if plan is not None else []
    account = usage_selectors.account_for(org.pk)
    return Entitlements(
        plan_code=state.plan_code, plan=plan, status=state.status, features=features,
        credits=CreditsUse(
            available_micros=account.available_micros, balance_micros=account.balance_micros,
            held_micros=account.held_micros, overage_allowed=account.overage_allowed, allowance=allowance_for(org.pk),
        ),
        limits=[
            LimitUse(org_entitlements.MEMBERS, plan_limit(plan, org_entitlements.MEMBERS),
                     org_selectors.members_count(org.pk), org_selectors.invitations_pending_count(org.pk)),
            LimitUse(org_entitlements.API_KEYS, plan_limit(plan, org_entitlements.API_KEYS),
                     account_selectors.api_keys_active_count(org.pk)),
        ],
        meters=[GatedMeter(m.code, m.name, m.required_feature, m.required_feature in features)
                for m in usage_selectors.meters_gated()],
    )


def feature_check(org: Organization, feature: str) -> None:
    """Nothing when the plan in force includes `feature`; 403 feature_not_in_plan
    (with the cheapest plan that does) when not; 400 unknown_feature for a code
    no plan knows."""
    if feature not in features_known():
        raise InvalidRequest(
            f"Unknown feature “{feature}”. Known features: {', '.join(features_known())}.", code="unknown_feature"
        )
    code = plan_code_of(org)
    if not plan_has_feature(code, feature):
        raise FeatureNotInPlan(feature=feature, plan_code=code)


def billing_state_of(org: Organization) -> BillingState:
    """The org's billing state as stored, or an unsaved Free one: pages read,
    they never create rows (the services start Free on first need)."""
    return BillingState.objects.filter(org=org).first() or BillingState(org=org)


@dataclass(frozen=True)
class Subscription:
    state: BillingState
    plan: Plan | None
    price: PlanPrice | None
    trial_days_left: int | None
    stripe_configured: bool
    simulated: bool

    @property
    def allowance_micros(self) -> int | None:
        """Credits of the period in force: a trial's are the trial allowance, not the paid price's."""
        if self.state.status == BillingStatus.TRIALING:
            return self.plan.trial_allowance_micros if self.plan else None
        return self.price.allowance_micros if self.price else None


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


def topup_attempts_for(org: Organization, limit: int = 20) -> QuerySet[TopUpAttempt]:
    return TopUpAttempt.objects.filter(org=org).select_related("pack").order_by("-created_at")[:limit]


def purchases_for(org: Organization, limit: int = 20) -> QuerySet[Purchase]:
    """The org's newest credit purchases (served by the purchase_org_recent index).
    No join: the purchases table shows the purchase's own columns only."""
    return Purchase.objects.filter(org=org).order_by("-created_at")[:limit]


# --- credits, for the pages ------------------------------------------------------

@dataclass(frozen=True)
class HeaderBalance:
    available_micros: int
    status: BalanceStatus


def header_balance(org_id: int) -> HeaderBalance:
    balance = usage_selectors.available_balance(org_id)
    return HeaderBalance(balance.available_micros, balance.status)


# --- the overview --------------------------------------------------------------

# The action sizes the overview prices, each a meter of the rate card.
ACTION_METERS: tuple[tuple[str, str], ...] = (
    ("action.small", "Small"),
    ("action.medium", "Medium"),
    ("action.large", "Large"),
    ("action.xl", "XL"),
)


@dataclass(frozen=True)
class ActionEstimate:
    code: str
    label: str
    cost_micros: int
    count: int


def actions_affordable(available_micros: int, plan_code: str) -> list[ActionEstimate]:
    """Roughly how many actions of each size the available credits still buy,
    priced from the rate card's action.* meters for the org's plan (the debit
    path's own prices). A size the card does not price is left out."""
    card = current_card()
    estimates = []
    for meter, label in ACTION_METERS:
        try:
            price = card.price(meter, "", plan_code)
        except InvalidRequest:
            continue
        cost_micros = charge_micros(1, price.credits_per_unit)
        if cost_micros <= 0:
            continue
        estimates.append(ActionEstimate(meter.split(".", 1)[1], label, cost_micros, max(available_micros, 0) // cost_micros))
    return estimates


@dataclass(frozen=True)
class Allowance:
    """The credits the current period (or the sign-up trial) brought, and how much of them is spent."""

    grant: Grant
    name: str
    period_start: datetime | None
    period_end: datetime | None

    @property
    def amount_micros(self) -> int:
        return self.grant.amount_micros

    @property
    def used_micros(self) -> int:
        return self.grant.amount_micros - self.grant.remaining_micros

    @property
    def percent(self) -> int:
        """Whole percent used, rounded down (so 79.9% never reads as 80%)."""
        return self.used_micros * 100 // self.amount_micros if self.amount_micros else 0

    @property
    def level(self) -> str:
        """ok, warn (80% or more used) or bad (95% or more), as the alerts count it."""
        if self.used_micros * 100 >= 95 * self.amount_micros:
            return "bad"
        if self.used_micros * 100 >= 80 * self.amount_micros:
            return "warn"
        return "ok"


def allowance_for(org_id: int, *, now: datetime | None = None) -> Allowance | None:
    """The allowance in force: the trial's credits while on the sign-up trial,
    else the newest plan allowance whose period has not ended (a plan change
    within a period replaces the previous one)."""
    now = now or timezone.now()
    state = BillingState.objects.filter(org_id=org_id).only("status", "plan_code").first()
    if state is not None and state.status == BillingStatus.TRIALING:
        trial = usage_selectors.grant_latest_unexpired(org_id=org_id, source=GrantSource.TRIAL, now=now)
        if trial is not None:
            plan = Plan.objects.filter(code=state.plan_code).first()
            return Allowance(trial, f"{plan.name if plan else 'Trial'} trial", trial.created_at, trial.expires_at)
    period = (
        AllowancePeriod.objects.filter(org_id=org_id, period_end__gt=now, grant__isnull=False)
        .select_related("grant").order_by("-created_at", "-id").first()
    )
    if period is None:
        return None
    plan = Plan.objects.filter(code=period.plan_code).first()
    name = f"{plan.name if plan else period.plan_code.title()} allowance"
    return Allowance(period.grant, name, period.period_start, period.period_end)


@dataclass(frozen=True)
class AutoTopUpStatus:
    settings: AutoTopUpSettings
    spent_cents: int

    @property
    def on(self) -> bool:
        return self.settings.enabled and not self.settings.paused_reason

    @property
    def cap_percent(self) -> int:
        cap = self.settings.monthly_cap_cents
        return min(100, self.spent_cents * 100 // cap) if cap else 0


def cap_month_start(now: datetime) -> datetime:
    """The start of the calendar month (UTC) auto top-up's monthly cap counts in."""
    return now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def spent_this_month_cents(org_id: int, now: datetime | None = None) -> int:
    """What auto top-ups charged or are charging this calendar month (UTC)."""
    now = now or timezone.now()
    return TopUpAttempt.objects.filter(
        org_id=org_id, created_at__gte=cap_month_start(now),
        status__in=[AttemptStatus.SUCCEEDED, *OPEN_ATTEMPT_STATUSES],
    ).aggregate(total=Sum("amount_cents"))["total"] or 0


def auto_topup_status(org: Organization | int) -> AutoTopUpStatus | None:
    org_id = org if isinstance(org, int) else org.pk
    row = AutoTopUpSettings.objects.select_related("pack").filter(org_id=org_id).first()
    if row is None:
        return None
    return AutoTopUpStatus(row, spent_this_month_cents(org_id))


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
    account = usage_selectors.account_for(org_id)
    grants = usage_selectors.live_grants(account=account)
    threshold = usage_selectors.low_balance_micros(account.low_balance_threshold_micros)
    return CreditsOverview(
        account=account,
        status=balance_status(account.available_micros, threshold),
        low_threshold_micros=threshold,
        grants=grants,
        sendable_micros=usage_selectors.sendable_micros(account=account, grants=grants),
        actions=actions_affordable(account.available_micros, account.plan_code),
    )


# --- the plans page ------------------------------------------------------------


@dataclass(frozen=True)
class FeatureLine:
    code: str
    label: str
    description: str


def feature_lines(features: list[str]) -> list[FeatureLine]:
    return [FeatureLine(f, feature_label(f), FEATURE_DESCRIPTIONS.get(f, "")) for f in features]


def limit_lines(plan: Plan) -> list[str]:
    """The plan's caps as the Plans page states them."""
    lines = []
    for resource, noun in ((org_entitlements.MEMBERS, "members"), (org_entitlements.API_KEYS, "API keys")):
        limit = plan_limit(plan, resource)
        lines.append(f"Unlimited {noun}" if limit is None else f"Up to {limit} {noun if limit != 1 else noun[:-1]}")
    return lines


@dataclass(frozen=True)
class PlanCard:
    """One plan as the plans page shows it at one billing interval, and what
    choosing it would do for this org."""

    plan: Plan
    price: PlanPrice | None
    current: bool
    action: str  # current, subscribe, upgrade, downgrade, switch, cancel, none
    features: list[str]
    unlocks: tuple[FeatureLine, ...] = ()  # each feature with what it unlocks
    limits: tuple[str, ...] = ()  # "Up to 3 members", "Unlimited API keys"

    @property
    def monthly_cents(self) -> int:
        if self.price is None:
            return 0
        return self.price.amount_cents // 12 if self.price.interval == "year" else self.price.amount_cents

    @property
    def yearly_saving_cents(self) -> int:
        """What paying by the year saves against twelve monthly payments."""
        if self.price is None or self.price.interval != "year":
            return 0
        monthly = next((p for p in self.plan.prices.all() if p.interval == "month"), None)
        return max(0, monthly.amount_cents * 12 - self.price.amount_cents) if monthly else 0


def _monthly_equivalent(price: PlanPrice | None) -> int:
    """A year of the price, in cents, to compare monthly and yearly prices."""
    if price is None:
        return 0
    return price.amount_cents * 12 if price.interval == "month" else price.amount_cents


def plan_cards(*, state: BillingState, interval: str) -> list[PlanCard]:
    """Every active plan at `interval` (Free at its only price), the org's
    current one marked, each with the change it would be from where the org is."""
    subscribed = bool(state.subscription_id) and state.status in (
        BillingStatus.ACTIVE, BillingStatus.PAST_DUE, BillingStatus.TRIALING)
    plans = list(plans_active())
    current_plan = next((p for p in plans if p.code == state.plan_code), None)
    current_price = None
    if current_plan is not None:
        current_price = next((p for p in current_plan.prices.all() if p.interval == (state.interval or "month")), None)
    # Compare plans by what a year of each costs, whatever the interval.
    current_year = _monthly_equivalent(current_price)
    cards = []
    for plan in plans:
        prices = [p for p in plan.prices.all() if p.active]
        price = next((p for p in prices if p.interval == interval), None) or next(iter(prices), None)
        free = price is None or price.amount_cents == 0
        is_current_plan = plan.code == state.plan_code
        same_interval = free or (price is not None and price.interval == (state.interval or "month"))
        if is_current_plan and state.status == BillingStatus.TRIALING and not state.subscription_id:
            action = "subscribe"  # the sign-up trial: keep the plan by subscribing
        elif is_current_plan and same_interval:
            action = "current"
        elif is_current_plan:
            action = "switch" if subscribed else "subscribe"
        elif free:
            action = "cancel" if subscribed else "none"
        elif subscribed:
            action = "upgrade" if _monthly_equivalent(price) > current_year else "downgrade"
        else:
            action = "subscribe"
        cards.append(PlanCard(
            plan=plan, price=price, current=is_current_plan and (same_interval or action == "subscribe"),
            action=action, features=[feature_label(f) for f in plan.features],
            unlocks=tuple(feature_lines(plan.features or [])), limits=tuple(limit_lines(plan)),
        ))
    return cards


# --- reconciliation with Stripe (billing.services.reconciliation) ------------------


@dataclass(frozen=True)
class ReconciliationSummary:
    run: ReconciliationRun
    by_kind: list[tuple[str, int]]  # (what drifted, how many), the most first


def reconciliation_runs(*, limit: int = 30) -> list[ReconciliationRun]:
    """The latest runs, newest first."""
    return list(ReconciliationRun.objects.order_by("-started_at", "-id")[:limit])


def reconciliation_run(run_id: int) -> ReconciliationRun:
    run = ReconciliationRun.objects.filter(pk=run_id).first()
    if run is None:
        raise NotFound("No such reconciliation run.", code="run_not_found")
    return run


def reconciliation_findings(run: ReconciliationRun) -> list[ReconciliationFinding]:
    """A run's drift, each with its organization, in the order found."""
    return list(run.findings.select_related("org").order_by("id"))


def reconciliation_last_run() -> ReconciliationRun | None:
    """The last run that finished."""
    return ReconciliationRun.objects.filter(finished_at__isnull=False).order_by("-started_at", "-id").first()


def reconciliation_last() -> ReconciliationSummary | None:
    """The last run that finished and its drift counted by kind."""
    run = reconciliation_last_run()
    if run is None:
        return None
    labels = dict(DriftKind.choices)
    counts = [(str(labels.get(kind, kind)), n)
              for kind, n in run.findings.order_by().values("kind").annotate(n=Count("id")).values_list("kind", "n")]
    return ReconciliationSummary(run=run, by_kind=sorted(counts, key=lambda item: (-item[1], item[0])))
