"""Reads of credits and usage, for the API and the pages. Everything is scoped to
one organization here; nothing in this module writes."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import TYPE_CHECKING, Literal

from django.db import connection
from django.db.models import Count, F, QuerySet, Sum
from django.db.models.functions import TruncDay, TruncMonth, TruncWeek
from django.utils.dateparse import parse_datetime

from billing_project.errors import InvalidRequest
from usage.models import BillingMode, EntryKind, LedgerEntry, UsageEvent
from usage.services.rates import current_card, read_data_file
from usage.units import MICROS_PER_CREDIT, charge_micros

if TYPE_CHECKING:
    from orgs.models import Organization

# Below this many credits available an account is "low" unless the account
# sets its own threshold (billing's auto top-up settings).
DEFAULT_LOW_BALANCE_MICROS = 100 * MICROS_PER_CREDIT

Status = Literal["ok", "low", "depleted"]
Period = Literal["day", "week", "month"]
GroupBy = Literal["meter", "model", "member", "workflow_run"]
PERIODS: dict[str, type] = {"day": TruncDay, "week": TruncWeek, "month": TruncMonth}
GROUPS: dict[str, str] = {"meter": "meter__code", "model": "model", "member": "member__email", "workflow_run": "workflow_run_id"}


@dataclass(frozen=True)
class GrantBalance:
    id: int
    source: str
    remaining_micros: int
    expires_at: datetime | None


@dataclass(frozen=True)
class BalanceSummary:
    balance_micros: int
    held_micros: int
    debt_micros: int
    plan_code: str
    overage_allowed: bool
    low_threshold_micros: int
    grants: list[GrantBalance] = field(default_factory=list)

    @property
    def available_micros(self) -> int:
        return self.balance_micros - self.held_micros

    @property
    def status(self) -> Status:
        if self.available_micros <= 0:
            return "depleted"
        if self.available_micros < self.low_threshold_micros:
            return "low"
        return "ok"


_BALANCE_SQL = """
SELECT a.balance_micros, a.held_micros, a.debt_micros, a.plan_code, a.overage_allowed, to_jsonb(a) -> 'low_balance_threshold_micros',
  (SELECT coalesce(json_agg(json_build_array(g.id, g.source, g.remaining_micros, g.expires_at)
                            ORDER BY g.expires_at ASC NULLS LAST, g.priority, g.created_at, g.id), '[]')
   FROM usage_grant g WHERE g.account_id = a.id AND g.remaining_micros > 0 AND (g.expires_at IS NULL OR g.expires_at > now()))
FROM usage_creditaccount a WHERE a.org_id = %s
"""


def balance_summary(org: Organization | int) -> BalanceSummary:
    """Balance, available, held, status and spendable grants: one indexed query,
    whatever the length of the ledger (the balance is a cached column)."""
    org_id = org if isinstance(org, int) else org.pk
    with connection.cursor() as cursor:
        cursor.execute(_BALANCE_SQL, [org_id])
        row = cursor.fetchone()
    if row is None:
        return BalanceSummary(0, 0, 0, "free", False, DEFAULT_LOW_BALANCE_MICROS)
    balance, held, debt, plan, overage, threshold, grants = row
    if isinstance(threshold, str):
        threshold = json.loads(threshold)
    return BalanceSummary(
        balance, held, debt, plan, overage,
        int(threshold) if threshold is not None else DEFAULT_LOW_BALANCE_MICROS,
        [GrantBalance(g[0], g[1], g[2], parse_datetime(g[3]) if g[3] else None) for g in grants],
    )


def ledger_entries(
    org: Organization, *, kind: str | None = None, since: datetime | None = None, until: datetime | None = None
) -> QuerySet[LedgerEntry]:
    """The org's ledger, newest first, optionally one kind and a [since, until) window."""
    if kind is not None and kind not in EntryKind.values:
        raise InvalidRequest(f"Unknown kind “{kind}”. Known: {', '.join(EntryKind.values)}.", code="invalid_kind")
    entries = LedgerEntry.objects.filter(account__org=org)
    if kind:
        entries = entries.filter(kind=kind)
    if since:
        entries = entries.filter(created_at__gte=since)
    if until:
        entries = entries.filter(created_at__lt=until)
    return entries.order_by("-created_at", "-id")


@dataclass(frozen=True)
class UsageRow:
    period_start: datetime
    key: str | None
    quantity: Decimal
    credits_micros: int
    events: int


def usage_series(
    org: Organization, *, period: Period = "day", group_by: GroupBy = "meter",
    since: datetime | None = None, until: datetime | None = None,
) -> list[UsageRow]:
    """Usage totals per day/week/month (UTC), grouped by meter, model, member or
    workflow run, oldest period first. Quantities of different meters are only
    summed within a meter; group by meter to chart quantities."""
    if period not in PERIODS:
        raise InvalidRequest("period must be day, week or month.", code="invalid_period")
    if group_by not in GROUPS:
        raise InvalidRequest("group_by must be meter, model, member or workflow_run.", code="invalid_group_by")
    events = UsageEvent.objects.filter(account__org=org)
    if since:
        events = events.filter(occurred_at__gte=since)
    if until:
        events = events.filter(occurred_at__lt=until)
    rows = (
        events.annotate(period_start=PERIODS[period]("occurred_at"), key=F(GROUPS[group_by]))
        .values("period_start", "key")
        .annotate(quantity=Sum("quantity"), credits_micros=Sum("credits_micros"), events=Count("id"))
        .order_by("period_start", "key")
    )
    return [UsageRow(r["period_start"], r["key"] or None, r["quantity"], r["credits_micros"], r["events"]) for r in rows]


# --- estimates ------------------------------------------------------------------

_CENT = Decimal("0.01")


@dataclass(frozen=True)
class EstimateLine:
    meter: str
    model: str
    low: Decimal
    high: Decimal
    credits_per_unit: Decimal
    low_micros: int
    high_micros: int


@dataclass(frozen=True)
class Estimate:
    workflow: str | None
    lines: list[EstimateLine]
    usd_per_credit: Decimal

    @property
    def low_micros(self) -> int:
        return sum(line.low_micros for line in self.lines)

    @property
    def high_micros(self) -> int:
        return sum(line.high_micros for line in self.lines)

    def usd(self, micros: int) -> Decimal:
        """Money at the pack price, rounded half up to the cent."""
        return (Decimal(micros) / MICROS_PER_CREDIT * self.usd_per_credit).quantize(_CENT, rounding=ROUND_HALF_UP)


_workflows_cache: dict | None = None


def workflows() -> dict:
    """Workflow types the estimate knows (tweet, thread, carousel, story, video), from the rate card file."""
    global _workflows_cache
    if _workflows_cache is None:
        data = read_data_file()
        _workflows_cache = {"usd_per_credit": Decimal(str(data["usd_per_credit"])), "workflows": data["workflows"]}
    return _workflows_cache


def estimate(
    *, plan_code: str, workflow: str | None = None, items: list[dict] | None = None,
    billing_mode: str = BillingMode.PLATFORM_KEY,
) -> Estimate:
    """Credits and money a workflow type or a list of meter quantities would cost on
    a plan: each item as {meter, model?, quantity} or {meter, model?, low, high}."""
    catalog = workflows()
    if workflow is not None:
        known = catalog["workflows"]
        if workflow not in known:
            raise InvalidRequest(f"Unknown workflow “{workflow}”. Known: {', '.join(known)}.", code="unknown_workflow")
        items = known[workflow]["usage"]
    if not items:
        raise InvalidRequest("Name a workflow or list at least one meter quantity.", code="invalid_request")
    card = current_card()
    lines = []
    for item in items:
        low = Decimal(str(item.get("low", item.get("quantity"))))
        high = Decimal(str(item.get("high", item.get("quantity"))))
        if low < 0 or high < low:
            raise InvalidRequest("Quantities must be zero or more, and low no more than high.", code="invalid_quantity")
        price = card.price(item["meter"], item.get("model", ""), plan_code)
        per_unit = Decimal(0) if billing_mode == BillingMode.OWN_KEY and price.is_provider_usage else price.credits_per_unit
        lines.append(EstimateLine(
            item["meter"], item.get("model", ""), low, high, per_unit, charge_micros(low, per_unit), charge_micros(high, per_unit),
        ))
    return Estimate(workflow, lines, catalog["usd_per_credit"])


# --- provider keys and member caps (for the pages) -----------------------------------


def provider_keys(org: Organization, *, include_revoked: bool = False) -> QuerySet:
    """The org's registered provider keys, newest first."""
    from usage.models import ProviderKey

    keys = ProviderKey.objects.filter(org=org)
    if not include_revoked:
        keys = keys.filter(revoked_at__isnull=True)
    return keys.order_by("-created_at")


@dataclass(frozen=True)
class MemberSpendRow:
    member_id: int
    email: str
    role: str
    spent_micros: int
    held_micros: int
    limit_micros: int | None

    @property
    def remaining_micros(self) -> int | None:
        if self.limit_micros is None:
            return None
        return max(self.limit_micros - self.spent_micros - self.held_micros, 0)


def member_spend(org: Organization, *, month=None) -> list[MemberSpendRow]:
    """Each member's spend this calendar month (UTC), open holds and monthly cap."""
    from django.utils import timezone

    from orgs.models import Membership
    from usage.models import Hold, HoldStatus, MemberSpend, MemberSpendLimit
    from usage.services.ledger import month_start

    month = month or month_start(timezone.now())
    spent = dict(MemberSpend.objects.filter(account__org=org, month=month).values_list("member_id", "spent_micros"))
    held = dict(
        Hold.objects.filter(account__org=org, status=HoldStatus.OPEN, member__isnull=False)
        .values("member_id").annotate(total=Sum("amount_micros")).values_list("member_id", "total")
    )
    limits = dict(MemberSpendLimit.objects.filter(account__org=org).values_list("member_id", "monthly_limit_micros"))
    rows = Membership.objects.filter(org=org).select_related("user").order_by("created_at")
    return [
        MemberSpendRow(m.user_id, m.user.email, m.role, spent.get(m.user_id, 0), held.get(m.user_id, 0), limits.get(m.user_id))
        for m in rows
    ]
