"""Usage over time: the summary API's rows, the usage charts and workflow runs' costs."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from datetime import timezone as dt_timezone
from decimal import Decimal
from typing import TYPE_CHECKING, Literal

from django.db import connection
from django.db.models import Count, F, Q, Sum
from django.db.models.functions import TruncDay, TruncMonth, TruncWeek
from django.utils import timezone

from accounts.models import User
from billing_project.errors import InvalidRequest
from usage.models import Meter, UsageEvent

if TYPE_CHECKING:
    from orgs.models import Organization


Period = Literal["day", "week", "month"]
GroupBy = Literal["meter", "model", "member", "workflow_run"]
PERIODS: dict[str, type] = {"day": TruncDay, "week": TruncWeek, "month": TruncMonth}
GROUPS: dict[str, str] = {"meter": "meter__code", "model": "model", "member": "member__email", "workflow_run": "workflow_run_id"}


@dataclass(frozen=True)
class UsageRow:
    period_start: datetime
    key: str | None
    meter: str
    quantity: Decimal
    credits_micros: int
    events: int


def usage_series(
    org: Organization, *, period: Period = "day", group_by: GroupBy = "meter",
    since: datetime | None = None, until: datetime | None = None,
) -> list[UsageRow]:
    """Usage totals per day/week/month (UTC), grouped by meter, model, member or
    workflow run, oldest period first. A row is one meter's within its group:
    tokens and seconds are never added into one quantity."""
    if period not in PERIODS:
        raise InvalidRequest("period must be day, week or month.", code="invalid_period")
    if group_by not in GROUPS:
        raise InvalidRequest("group_by must be meter, model, member or workflow_run.", code="invalid_group_by")
    # The org's own usage, and its members' paid from their personal balances (member_usage: personal).
    events = UsageEvent.objects.filter(Q(account__org=org) | Q(for_org=org))
    if since:
        events = events.filter(occurred_at__gte=since)
    if until:
        events = events.filter(occurred_at__lt=until)
    rows = (
        events.annotate(period_start=PERIODS[period]("occurred_at"), key=F(GROUPS[group_by]), meter_code=F("meter__code"))
        .values("period_start", "key", "meter_code")
        .annotate(quantity=Sum("quantity"), credits_micros=Sum("credits_micros"), events=Count("id"))
        .order_by("period_start", "key", "meter_code")
    )
    return [UsageRow(r["period_start"], r["key"] or None, r["meter_code"], r["quantity"], r["credits_micros"], r["events"])
            for r in rows]


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
    params = {**_chart_params(account_id, buckets, period), "top": top, "rolled": rolled_until()}
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
        names = dict(Meter.objects.filter(pk__in=[int(k) for k in keys if k.isdigit()]).values_list("pk", "name"))
        return {k: names.get(int(k), k) for k in keys if k.isdigit()}
    if group_by == "member":
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
    params = {**_chart_params(account_id, buckets, period), "limit": limit, "rolled": rolled_until()}
    with connection.cursor() as cursor:
        cursor.execute(_RUNS_SQL, params)
        rows = cursor.fetchall()
    runs = [RunCost(run, credits, events, first, last) for run, credits, events, first, last, _n in rows]
    return RunCosts(runs, rows[0][5] if rows else 0)


def rolled_until() -> datetime:
    """The roll-up cursor now (a hint for the planner; see _USAGE_UNION)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT rolled_until FROM usage_rollupcursor WHERE id = 1")
        row = cursor.fetchone()
    return row[0] if row else _NO_CURSOR


# Before the first roll-up every event is in the tail; created_at is a server
# clock reading, never before this.
_NO_CURSOR = datetime(1970, 1, 1, tzinfo=dt_timezone.utc)
