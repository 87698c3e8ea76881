"""Usage patterns over the last 30 days: credits per day by meter and by model,
the organizations that used the most, and those the runaway breaker flagged.

Read from usage's daily roll-ups plus the events the roll-up has not reached
yet, in one statement and one pass (GROUPING SETS), like the usage charts.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from datetime import timezone as dt_timezone

from django.db import connection
from django.db.models import Count, Max, Q

from backoffice.figures.selectors.period import Period
from orgs.models import Organization
from usage.models import RunawayOccurrence
from usage.selectors import chart_labels, rolled_until

TOP_SERIES = 6
TOP_ORGS = 10

_PATTERNS_SQL = """
WITH c AS (SELECT coalesce((SELECT rolled_until FROM usage_rollupcursor WHERE id = 1), '-infinity'::timestamptz) AS t),
u AS (
    SELECT r.day, r.meter_id, r.model, r.account_id, r.credits_micros AS credits
    FROM usage_usagerollup r WHERE r.day >= %(since)s AND r.day < %(until)s
    UNION ALL
    SELECT (e.occurred_at AT TIME ZONE 'UTC')::date, e.meter_id, e.model, e.account_id, e.credits_micros
    FROM usage_usageevent e, c
    WHERE e.created_at >= c.t AND e.created_at >= %(rolled)s
      AND e.occurred_at >= %(since_at)s AND e.occurred_at < %(until_at)s
)
SELECT GROUPING(day, meter_id, model, account_id), day, meter_id, model, account_id, sum(credits)::bigint
FROM u GROUP BY GROUPING SETS ((day, meter_id), (day, model), (account_id))
"""

# GROUPING() bits, in the order (day, meter_id, model, account_id): 1 marks a column rolled away.
_BY_METER, _BY_MODEL, _BY_ACCOUNT = 0b0011, 0b0101, 0b1110


@dataclass(frozen=True)
class Series:
    key: str | None  # None: everything outside the top series
    label: str
    values: list[int]  # micro-credits per day
    total_micros: int


@dataclass(frozen=True)
class Chart:
    days: list[date]
    series: list[Series]

    @property
    def totals(self) -> list[int]:
        return [sum(s.values[i] for s in self.series) for i in range(len(self.days))]

    @property
    def total_micros(self) -> int:
        return sum(s.total_micros for s in self.series)

    def rows(self) -> list[tuple[date, list[int], int]]:
        totals = self.totals
        return [(d, [s.values[i] for s in self.series], totals[i]) for i, d in enumerate(self.days)]


@dataclass(frozen=True)
class OrgUsage:
    org_id: int
    name: str
    slug: str
    credits_micros: int


@dataclass(frozen=True)
class Flagged:
    org_id: int
    name: str
    slug: str
    occurrences: int
    last_at: datetime
    paused: int  # of those, how many paused a key


@dataclass(frozen=True)
class Patterns:
    by_meter: Chart
    by_model: Chart
    top_orgs: list[OrgUsage]
    flagged: list[Flagged]


def _utc(day: date) -> datetime:
    return datetime.combine(day, datetime.min.time(), tzinfo=dt_timezone.utc)


def _chart(days: list[date], cells: dict[str, dict[date, int]], labels: dict[str, str]) -> Chart:
    index = {d: i for i, d in enumerate(days)}
    ordered = sorted(cells, key=lambda k: (-sum(cells[k].values()), k))
    series: list[Series] = []
    other = [0] * len(days)
    for n, key in enumerate(ordered):
        values = [0] * len(days)
        for day, micros in cells[key].items():
            values[index[day]] += micros
        if n < TOP_SERIES:
            series.append(Series(key, labels.get(key, key), values, sum(values)))
        else:
            other = [a + b for a, b in zip(other, values)]
    if len(ordered) > TOP_SERIES:
        series.append(Series(None, f"Other ({len(ordered) - TOP_SERIES})", other, sum(other)))
    return Chart(days, series)


def usage_patterns(period: Period) -> Patterns:
    last = period.as_of.astimezone(dt_timezone.utc).date()
    if period.as_of == datetime.combine(last, datetime.min.time(), tzinfo=dt_timezone.utc):
        last -= timedelta(days=1)  # a finished month ends at midnight: its last day is the day before
    days = [last - timedelta(days=n) for n in range(29, -1, -1)]
    until = last + timedelta(days=1)
    params = {"since": days[0], "until": until, "since_at": _utc(days[0]), "until_at": _utc(until),
              "rolled": rolled_until()}
    meters: dict[str, dict[date, int]] = {}
    by_model: dict[str, dict[date, int]] = {}
    accounts: dict[int, int] = {}
    with connection.cursor() as cursor:
        cursor.execute(_PATTERNS_SQL, params)
        for grouping, day, meter_id, model, account_id, micros in cursor.fetchall():
            if grouping == _BY_METER:
                meters.setdefault(str(meter_id), {})[day] = micros
            elif grouping == _BY_MODEL:
                by_model.setdefault(model, {})[day] = micros
            elif grouping == _BY_ACCOUNT:
                accounts[account_id] = micros
    meter_names = chart_labels("meter", list(meters))
    model_labels = chart_labels("model", list(by_model))
    top = sorted(accounts.items(), key=lambda kv: (-kv[1], kv[0]))[:TOP_ORGS]
    orgs = {o["credit_account__id"]: o for o in Organization.objects.filter(credit_account__id__in=[a for a, _ in top])
            .values("id", "name", "slug", "credit_account__id")}
    top_orgs = [OrgUsage(orgs[a]["id"], orgs[a]["name"], orgs[a]["slug"], micros) for a, micros in top if a in orgs]
    return Patterns(
        by_meter=_chart(days, meters, meter_names), by_model=_chart(days, by_model, model_labels),
        top_orgs=top_orgs, flagged=flagged_orgs(period),
    )


def flagged_orgs(period: Period, *, limit: int = 20) -> list[Flagged]:
    """Organizations whose spend (or one of whose keys') ran far above its baseline
    in the last 30 days: the runaway breaker's occurrences, latest first."""
    rows = (
        RunawayOccurrence.objects.filter(created_at__gte=period.recent_start, created_at__lt=period.as_of)
        .values("org_id", "org__name", "org__slug")
        .annotate(n=Count("id"), last_at=Max("created_at"), paused=Count("id", filter=Q(paused=True)))
        .order_by("-last_at", "org_id")[:limit]
    )
    return [Flagged(r["org_id"], r["org__name"], r["org__slug"], r["n"], r["last_at"], r["paused"]) for r in rows]

