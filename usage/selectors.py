"""Reads of credits and usage, for the API and the pages. Everything is scoped to
one organization or its account here; nothing in this module writes or locks.

History pages are keyset-paginated on (created_at, id), newest first, so page
1 and page 20,000 of a million entries cost the same: each is an index range
scan on one of LedgerEntry's (account, ..., -created_at) indexes, never an
OFFSET and never a COUNT.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from datetime import timezone as dt_timezone
from decimal import ROUND_HALF_UP, Decimal
from typing import TYPE_CHECKING, Literal

from django.conf import settings
from django.db import connection
from django.db.models import Count, F, Q, QuerySet, Sum, TextChoices
from django.db.models.functions import TruncDay, TruncMonth, TruncWeek
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from billing_project.errors import InvalidRequest
from usage.models import BillingMode, CreditAccount, EntryKind, Grant, LedgerEntry, Transfer, UsageEvent
from usage.services import transfer_sendable_micros
from usage.services.rates import current_card, read_data_file
from usage.units import MICROS_PER_CREDIT, charge_micros, credit_price, credits_to_micros

if TYPE_CHECKING:
    from orgs.models import Membership, Organization



class BalanceStatus(TextChoices):
    OK = "ok", "OK"
    LOW = "low", "Low"
    DEPLETED = "depleted", "Empty"


def balance_status(available_micros: int, low_threshold_micros: int) -> BalanceStatus:
    if available_micros <= 0:
        return BalanceStatus.DEPLETED
    if available_micros < low_threshold_micros:
        return BalanceStatus.LOW
    return BalanceStatus.OK


def low_balance_micros(threshold_micros: int | None = None) -> int:
    """Available credits below which a balance is "low": the org's own threshold
    (`CreditAccount.low_balance_threshold_micros`, set in its alert preferences)
    when it has one, else the deployment's LOW_BALANCE_CREDITS. The API, the
    header, the overview and the low-balance alerts all use this."""
    if threshold_micros is not None:
        return threshold_micros
    return credits_to_micros(settings.LOW_BALANCE_CREDITS)


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
    def status(self) -> BalanceStatus:
        return balance_status(self.available_micros, self.low_threshold_micros)


_BALANCE_SQL = """
SELECT a.balance_micros, a.held_micros, a.debt_micros, a.plan_code, a.overage_allowed, a.low_balance_threshold_micros,
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
        return BalanceSummary(0, 0, 0, "free", False, low_balance_micros())
    balance, held, debt, plan, overage, threshold, grants = row
    return BalanceSummary(
        balance, held, debt, plan, overage, low_balance_micros(threshold),
        [GrantBalance(g[0], g[1], g[2], parse_datetime(g[3]) if g[3] else None) for g in grants],
    )


def ledger_entries(
    *, account_id: int | None, kind: str | None = None, member_id: int | None = None,
    since: datetime | None = None, until: datetime | None = None,
) -> QuerySet[LedgerEntry]:
    """An account's ledger, newest first: optionally one kind, one member and a
    [since, until) window."""
    if kind and kind not in EntryKind.values:
        raise InvalidRequest(f"Unknown kind “{kind}”. Known: {', '.join(EntryKind.values)}.", code="invalid_kind")
    entries = LedgerEntry.objects.filter(account_id=account_id)
    if kind:
        entries = entries.filter(kind=kind)
    if member_id:
        entries = entries.filter(member_id=member_id)
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
        """Money at the list price of a credit (CREDIT_PRICE), rounded half up to the cent."""
        return (Decimal(micros) / MICROS_PER_CREDIT * self.usd_per_credit).quantize(_CENT, rounding=ROUND_HALF_UP)


_workflows_cache: dict | None = None


def workflows() -> dict:
    """Workflow types the estimate knows (tweet, thread, carousel, story, video), from the rate card file."""
    global _workflows_cache
    if _workflows_cache is None:
        data = read_data_file()
        _workflows_cache = {"workflows": data["workflows"]}
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
    return Estimate(workflow, lines, credit_price())


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


def member_spend(
    org: Organization, *, month=None, memberships: Iterable[Membership] | None = None
) -> list[MemberSpendRow]:
    """Each member's spend this calendar month (UTC), open holds and monthly cap.
    `memberships` are the org's, with their users, when the caller has read them already."""
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
    if memberships is None:
        memberships = Membership.objects.filter(org=org).select_related("user").order_by("created_at")
    return [
        MemberSpendRow(m.user_id, m.user.email, m.role, spent.get(m.user_id, 0), held.get(m.user_id, 0), limits.get(m.user_id))
        for m in memberships
    ]


# --- the history page -----------------------------------------------------------

HISTORY_PAGE_SIZE = 50


@dataclass(frozen=True)
class HistoryFilters:
    """What the history is narrowed to. Dates are whole days in the site's time
    zone, both ends included."""

    kind: str = ""
    since: date | None = None
    until: date | None = None
    member_id: int | None = None

    def __post_init__(self) -> None:
        if self.kind and self.kind not in EntryKind.values:
            raise ValueError(f"Unknown entry kind {self.kind!r}.")

    @property
    def active(self) -> bool:
        return bool(self.kind or self.since or self.until or self.member_id)


def _day_start(day: date) -> datetime:
    return timezone.make_aware(datetime.combine(day, time.min), timezone.get_current_timezone())


def history_entries(*, account_id: int, filters: HistoryFilters = HistoryFilters()) -> QuerySet[LedgerEntry]:
    """The history page's entries: `ledger_entries` over whole days, with what
    the page shows about each (member, transfer counterparties) joined in."""
    return ledger_entries(
        account_id=account_id,
        kind=filters.kind,
        member_id=filters.member_id,
        since=_day_start(filters.since) if filters.since else None,
        # through the end of `until`; the last representable day has no day after it
        until=_day_start(filters.until + timedelta(days=1)) if filters.until and filters.until < date.max else None,
    ).select_related("member", "transfer__from_account__org", "transfer__to_account__org")


# --- keyset pages -------------------------------------------------------------


def cursor_for(entry: LedgerEntry) -> str:
    """An opaque position in the history: the entry's (created_at, id)."""
    raw = f"{entry.created_at.astimezone(dt_timezone.utc).isoformat()}|{entry.pk}"
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def cursor_parse(cursor: str) -> tuple[datetime, int] | None:
    """The position a cursor names, or None for anything that is not one of ours."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        stamp, pk = raw.split("|")
        moment = datetime.fromisoformat(stamp)
        if moment.tzinfo is None:
            return None
        return moment, int(pk)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        return None


@dataclass(frozen=True)
class HistoryPage:
    entries: list[LedgerEntry]
    older: str | None  # cursor of the next page back in time, if there is one
    newer: str | None  # cursor of the page before this one, if this is not the newest


def ledger_page(
    *,
    account_id: int,
    filters: HistoryFilters = HistoryFilters(),
    older_than: str | None = None,
    newer_than: str | None = None,
    size: int | None = None,
) -> HistoryPage:
    """One page of history. `older_than` walks back in time from a cursor,
    `newer_than` walks forward; neither (or a cursor that does not parse)
    gives the newest page."""
    size = size or HISTORY_PAGE_SIZE
    entries = history_entries(account_id=account_id, filters=filters)
    older_pos = cursor_parse(older_than) if older_than else None
    newer_pos = cursor_parse(newer_than) if newer_than else None
    if newer_pos is not None:
        moment, pk = newer_pos
        # The redundant `created_at >= moment` bounds the index range scan;
        # the OR alone would make PostgreSQL walk the index from one end.
        after = Q(created_at__gte=moment) & (Q(created_at__gt=moment) | Q(created_at=moment, id__gt=pk))
        rows = list(entries.filter(after).order_by("created_at", "id")[: size + 1])
        more_newer = len(rows) > size
        rows = rows[:size][::-1]
        return HistoryPage(
            entries=rows,
            older=cursor_for(rows[-1]) if rows else None,
            newer=cursor_for(rows[0]) if rows and more_newer else None,
        )
    if older_pos is not None:
        moment, pk = older_pos
        entries = entries.filter(Q(created_at__lte=moment) & (Q(created_at__lt=moment) | Q(created_at=moment, id__lt=pk)))
    rows = list(entries[: size + 1])
    more_older = len(rows) > size
    rows = rows[:size]
    return HistoryPage(
        entries=rows,
        older=cursor_for(rows[-1]) if rows and more_older else None,
        newer=cursor_for(rows[0]) if rows and older_pos is not None else None,
    )


def ledger_export_rows(*, account_id: int, filters: HistoryFilters = HistoryFilters()) -> Iterator[LedgerEntry]:
    """Every matching entry, streamed from a server-side cursor in chunks, so
    an export of a million rows never holds them all in memory."""
    return history_entries(account_id=account_id, filters=filters).iterator(chunk_size=2000)


# --- balances ----------------------------------------------------------------


def account_for(org_id: int) -> CreditAccount:
    """The org's account as stored, or an empty unsaved one if it has none yet
    (reads never create rows)."""
    return CreditAccount.objects.filter(org_id=org_id).first() or CreditAccount(org_id=org_id)


def live_grants(*, account: CreditAccount, now: datetime | None = None) -> list[Grant]:
    """Grants with credits left that have not expired, in the order usage burns them."""
    if account.pk is None:
        return []
    return list(Grant.objects.filter(account=account).spendable(now or timezone.now()).burn_order())


def sendable_micros(*, account: CreditAccount, grants: list[Grant]) -> int:
    """What the org could send right now: the same rule `credits_transfer`
    enforces under the lock, applied to an unlocked read of live grants."""
    return transfer_sendable_micros(account=account, grants=grants)


def recent_transfers(*, account_id: int, limit: int = 10) -> list[Transfer]:
    """Transfers the account sent or received, newest first, with both sides' orgs."""
    return list(
        Transfer.objects.filter(Q(from_account_id=account_id) | Q(to_account_id=account_id))
        .select_related("from_account__org", "to_account__org", "sent_by")
        .order_by("-created_at", "-id")[:limit]
    )


# --- the usage charts -------------------------------------------------------------

CHART_PERIODS = {"day": "Daily, last 30 days", "week": "Weekly, last 12 weeks", "month": "Monthly, last 12 months"}
CHART_GROUPS = {"meter": "Meter", "model": "Model", "member": "Member", "workflow_run": "Workflow run"}
CHART_TOP = 6

_CHART_KEYS = {
    # (roll-up table, its key, the same key on an event)
    "meter": ("usage_usagerollup", "r.meter_id::text", "e.meter_id::text"),
    "model": ("usage_usagerollup", "r.model", "e.model"),
    "member": ("usage_usagerollup", "coalesce(r.member_id::text, '')", "coalesce(e.member_id::text, '')"),
    "workflow_run": ("usage_usagerunrollup", "r.workflow_run_id", "e.workflow_run_id"),
}

# Roll-up rows for the days in range, plus the events the roll-up has not
# reached yet (created at or after its cursor), in one statement: one
# snapshot, so a roll-up committing meanwhile is counted once either way.
# `u` is not materialized: scanning the roll-up twice is cheaper than writing
# a year of workflow-run rows to a temporary store and hashing it from there.
_USAGE_UNION = """
c AS (SELECT coalesce((SELECT rolled_until FROM usage_rollupcursor WHERE id = 1), '-infinity'::timestamptz) AS t),
u AS NOT MATERIALIZED (
    SELECT r.day, {key_r} AS key, r.credits_micros AS credits, r.events AS events
    FROM {table} r WHERE r.account_id = %(account)s AND r.day >= %(since)s AND r.day < %(until)s
    UNION ALL
    SELECT (e.occurred_at AT TIME ZONE 'UTC')::date, {key_e}, e.credits_micros, 1
    FROM usage_usageevent e, c
    WHERE e.account_id = %(account)s AND e.created_at >= c.t AND e.created_at >= %(rolled)s
      AND e.occurred_at >= %(since_at)s AND e.occurred_at < %(until_at)s
)"""
# `rolled` is the cursor as read just before the statement: never later than
# `c.t` (the cursor only moves on), so it changes no result, but as a known
# value it lets the planner see how few events are left (the BRIN index)
# instead of guessing and walking the account's events in the whole range.

# Each key's total is aggregated once (`g`) and both picks the top series and
# counts the keys (a count(DISTINCT) over `u` was a second, sorting pass).
_CHART_SQL = "WITH " + _USAGE_UNION + """,
g AS MATERIALIZED (SELECT key, sum(credits) AS credits FROM u GROUP BY key),
top AS (SELECT key FROM g ORDER BY credits DESC, key LIMIT %(top)s),
n AS (SELECT count(*) AS keys FROM g)
SELECT date_trunc(%(period)s, u.day::timestamp)::date AS bucket,
       CASE WHEN u.key IN (SELECT key FROM top) THEN u.key END AS key,
       sum(u.credits)::bigint, sum(u.events)::bigint, (SELECT keys FROM n)
FROM u GROUP BY 1, 2 ORDER BY 1, 2 NULLS LAST
"""


@dataclass(frozen=True)
class ChartSeries:
    key: str | None  # None: everything outside the top series
    label: str
    values: list[int]  # micro-credits per bucket
    total_micros: int
    events: int


@dataclass(frozen=True)
class UsageChart:
    period: str
    group_by: str
    buckets: list[date]
    series: list[ChartSeries]
    totals: list[int]
    keys: int  # distinct meters / models / members / runs in range

    @property
    def total_micros(self) -> int:
        return sum(self.totals)

    @property
    def events(self) -> int:
        return sum(s.events for s in self.series)

    @property
    def other_keys(self) -> int:
        """How many meters / models / members / runs the "Other" series holds."""
        return self.keys - sum(1 for s in self.series if s.key is not None)

    def rows(self) -> list[tuple[date, list[int], int]]:
        """The chart as a table: each bucket with its value per series and its total."""
        return [(b, [s.values[i] for s in self.series], self.totals[i]) for i, b in enumerate(self.buckets)]


def chart_buckets(period: str, today: date) -> list[date]:
    """The buckets a chart shows, oldest first, ending with the one holding `today` (UTC)."""
    if period == "day":
        return [today - timedelta(days=n) for n in range(29, -1, -1)]
    if period == "week":
        monday = today - timedelta(days=today.weekday())
        return [monday - timedelta(weeks=n) for n in range(11, -1, -1)]
    first = today.replace(day=1)
    months = []
    for n in range(11, -1, -1):
        index = first.year * 12 + first.month - 1 - n
        months.append(date(index // 12, index % 12 + 1, 1))
    return months


def _utc(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=dt_timezone.utc)


def _chart_params(account_id: int, buckets: list[date], period: str) -> dict:
    since = buckets[0]
    until = buckets[-1] + (timedelta(days=1) if period == "day" else timedelta(weeks=1) if period == "week" else timedelta(0))
    if period == "month":
        last = buckets[-1]
        until = date(last.year + (last.month == 12), last.month % 12 + 1, 1)
    return {"account": account_id, "since": since, "until": until, "since_at": _utc(since), "until_at": _utc(until),
            "period": period}


def usage_chart(
    *, account_id: int | None, period: str = "day", group_by: str = "meter", today: date | None = None,
    top: int = CHART_TOP,
) -> UsageChart:
    """Credits used per day, week or month (UTC), split by meter, model, member
    or workflow run: the `top` biggest series by name and the rest as one
    "Other". Read from the roll-ups and the events since, aggregated in the
    database: a year of usage costs a few thousand roll-up rows, not every event."""
    if period not in CHART_PERIODS:
        raise InvalidRequest("period must be day, week or month.", code="invalid_period")
    if group_by not in CHART_GROUPS:
        raise InvalidRequest("group_by must be meter, model, member or workflow_run.", code="invalid_group_by")
    buckets = chart_buckets(period, today or timezone.now().astimezone(dt_timezone.utc).date())
    empty = UsageChart(period, group_by, buckets, [], [0] * len(buckets), 0)
    if account_id is None:
        return empty
    table, key_r, key_e = _CHART_KEYS[group_by]
    params = {**_chart_params(account_id, buckets, period), "top": top, "rolled": _rolled()}
    with connection.cursor() as cursor:
        cursor.execute(_CHART_SQL.format(table=table, key_r=key_r, key_e=key_e), params)
        rows = cursor.fetchall()
    if not rows:
        return empty
    index = {b: i for i, b in enumerate(buckets)}
    values: dict[str | None, list[int]] = {}
    events: dict[str | None, int] = {}
    for bucket, key, credits, count, _keys in rows:
        if bucket not in index:
            continue
        values.setdefault(key, [0] * len(buckets))[index[bucket]] += credits
        events[key] = events.get(key, 0) + count
    labels = chart_labels(group_by, [k for k in values if k is not None])
    ordered = sorted((k for k in values if k is not None), key=lambda k: (-sum(values[k]), k))
    if None in values:
        ordered.append(None)
    series = [
        ChartSeries(key, labels.get(key, "Other") if key is not None else "Other", values[key], sum(values[key]), events[key])
        for key in ordered
    ]
    totals = [sum(s.values[i] for s in series) for i in range(len(buckets))]
    return UsageChart(period, group_by, buckets, series, totals, rows[0][4])


def chart_labels(group_by: str, keys: list[str]) -> dict[str, str]:
    """What people read for each key: meter names, member names, "No model"."""
    if group_by == "meter":
        from usage.models import Meter

        names = dict(Meter.objects.filter(pk__in=[int(k) for k in keys if k.isdigit()]).values_list("pk", "name"))
        return {k: names.get(int(k), k) for k in keys if k.isdigit()}
    if group_by == "member":
        from accounts.models import User

        users = {str(u.pk): u.get_full_name() for u in User.objects.filter(pk__in=[int(k) for k in keys if k.isdigit()])}
        return {k: users.get(k, "Former member") if k else "No member" for k in keys}
    if group_by == "model":
        return {k: k or "No model" for k in keys}
    return {k: k or "No workflow run" for k in keys}


_RUNS_SQL = """
WITH c AS (SELECT coalesce((SELECT rolled_until FROM usage_rollupcursor WHERE id = 1), '-infinity'::timestamptz) AS t),
u AS NOT MATERIALIZED (
    SELECT r.workflow_run_id AS key, r.credits_micros AS credits, r.events AS events, r.first_at, r.last_at
    FROM usage_usagerunrollup r
    WHERE r.account_id = %(account)s AND r.day >= %(since)s AND r.day < %(until)s AND r.workflow_run_id <> ''
    UNION ALL
    SELECT e.workflow_run_id, e.credits_micros, 1, e.occurred_at, e.occurred_at
    FROM usage_usageevent e, c
    WHERE e.account_id = %(account)s AND e.created_at >= c.t AND e.created_at >= %(rolled)s
      AND e.occurred_at >= %(since_at)s AND e.occurred_at < %(until_at)s AND e.workflow_run_id <> ''
)
SELECT key, sum(credits)::bigint, sum(events)::bigint, min(first_at), max(last_at), count(*) OVER ()
FROM u GROUP BY key ORDER BY 2 DESC, 1 LIMIT %(limit)s
"""


@dataclass(frozen=True)
class RunCost:
    run_id: str
    credits_micros: int
    events: int
    first_at: datetime | None
    last_at: datetime | None


@dataclass(frozen=True)
class RunCosts:
    runs: list[RunCost]
    run_count: int


def workflow_run_costs(*, account_id: int | None, period: str = "day", today: date | None = None,
                       limit: int = 15) -> RunCosts:
    """The costliest workflow runs in the chart's range, with their number of events and when they ran."""
    if account_id is None:
        return RunCosts([], 0)
    buckets = chart_buckets(period, today or timezone.now().astimezone(dt_timezone.utc).date())
    params = {**_chart_params(account_id, buckets, period), "limit": limit, "rolled": _rolled()}
    with connection.cursor() as cursor:
        cursor.execute(_RUNS_SQL, params)
        rows = cursor.fetchall()
    runs = [RunCost(run, credits, events, first, last) for run, credits, events, first, last, _n in rows]
    return RunCosts(runs, rows[0][5] if rows else 0)


def _rolled() -> datetime:
    """The roll-up cursor now (a hint for the planner; see _USAGE_UNION)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT rolled_until FROM usage_rollupcursor WHERE id = 1")
        row = cursor.fetchone()
    return row[0] if row else _NO_CURSOR


# Before the first roll-up every event is in the tail; created_at is a server
# clock reading, never before this.
_NO_CURSOR = datetime(1970, 1, 1, tzinfo=dt_timezone.utc)


@dataclass(frozen=True)
class WorkflowEstimate:
    code: str
    name: str
    estimate: Estimate


def workflow_estimates(plan_code: str) -> list[WorkflowEstimate]:
    """What each known workflow type typically costs on a plan (the rate card's estimates)."""
    known = workflows()["workflows"]
    out = []
    for code, spec in known.items():
        try:
            out.append(WorkflowEstimate(code, spec.get("name", code.title()), estimate(plan_code=plan_code, workflow=code)))
        except InvalidRequest:
            continue  # a workflow that names a meter this deployment does not price
    return out


# --- reads for billing ---------------------------------------------------------
# Billing reads balances and grants through these, never through usage's models.


@dataclass(frozen=True)
class AvailableBalance:
    available_micros: int
    low_threshold_micros: int

    @property
    def status(self) -> BalanceStatus:
        return balance_status(self.available_micros, self.low_threshold_micros)


def available_balance(org_id: int) -> AvailableBalance:
    """Available credits and the org's low-balance line, for the page header:
    one indexed row read (nothing and the default line before the first write)."""
    row = (
        CreditAccount.objects.filter(org_id=org_id)
        .values_list("balance_micros", "held_micros", "low_balance_threshold_micros")
        .first()
    )
    available = row[0] - row[1] if row else 0
    return AvailableBalance(available, low_balance_micros(row[2] if row else None))


def balance_micros_for(org_id: int) -> int | None:
    """The org's balance, or None while it has no credit account (no write yet)."""
    return CreditAccount.objects.filter(org_id=org_id).values_list("balance_micros", flat=True).first()


def overage_debt_micros(org_id: int) -> int:
    """The debt the org may be billed for as overage: its debt when its plan
    allows overage, else 0."""
    row = CreditAccount.objects.filter(org_id=org_id).values_list("overage_allowed", "debt_micros").first()
    return row[1] if row and row[0] else 0


def org_ids_in_overage(*, min_debt_micros: int, limit: int) -> list[int]:
    """Organizations allowed overage that owe at least `min_debt_micros`."""
    return list(
        CreditAccount.objects.filter(overage_allowed=True, debt_micros__gte=min_debt_micros)
        .values_list("org_id", flat=True)[:limit]
    )


def grants_unspent(*, org_id: int, source: str) -> list[Grant]:
    """The org's grants from `source` with credits left, expired or not."""
    return list(Grant.objects.filter(account__org_id=org_id, source=source, remaining_micros__gt=0))


def grant_latest_unexpired(*, org_id: int, source: str, now: datetime) -> Grant | None:
    """The org's newest grant from `source` that has not expired by `now`."""
    return (
        Grant.objects.filter(account__org_id=org_id, source=source, expires_at__gt=now)
        .order_by("-created_at").first()
    )
