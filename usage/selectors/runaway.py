"""Spend rates for the runaway breaker (usage.services.runaway).

Windows are on `UsageEvent.created_at`, the time the credits were debited (a
caller may back-date `occurred_at`). The last hour is [now - 1 h, now); the
baseline is the 7 days before it, [now - 169 h, now - 1 h).

Baseline per hour = spend in those 7 days / the hours they count. A scope (the
organization or one API key) younger than 7 days counts only the whole hours it
existed before the last hour, at least one: a key made yesterday is compared
with its own day, not diluted by six days it did not exist. A brand-new scope
has a baseline of 0, so only RUNAWAY_MIN_CREDITS stands between it and a trip.

Indexes: the last hour is read through the BRIN on created_at (only scopes with
spend in it are looked at further); an organization's baseline through
(account, created_at), a key's through the partial (api_key_prefix, created_at).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Sum

from usage.models import UsageEvent

WINDOW = timedelta(hours=1)
BASELINE_SPAN = timedelta(days=7)
BASELINE_HOURS = 168


@dataclass(frozen=True, slots=True)
class HourSpend:
    """Last hour's spend of an organization (api_key_prefix None) or of one of its API keys."""

    org_id: int
    account_id: int
    api_key_prefix: str | None
    spend_micros: int


@dataclass(frozen=True, slots=True)
class Baseline:
    """Spend over the baseline window and the hours it counts; `per_hour_micros` rounds down."""

    total_micros: int
    hours: int

    @property
    def per_hour_micros(self) -> int:
        return self.total_micros // self.hours


def spend_last_hour(*, now: datetime, minimum_micros: int = 0) -> list[HourSpend]:
    """Every organization's and every API key's spend in [now - 1 h, now), those at
    least `minimum_micros` only (the others cannot trip)."""
    recent = UsageEvent.objects.filter(created_at__gte=now - WINDOW, created_at__lt=now, credits_micros__gt=0)
    rows: list[HourSpend] = []
    for row in (recent.values("account_id", "account__org_id").annotate(spend=Sum("credits_micros"))
                .filter(spend__gte=max(minimum_micros, 1)).order_by("account_id")):
        rows.append(HourSpend(row["account__org_id"], row["account_id"], None, row["spend"]))
    for row in (recent.filter(api_key_prefix__isnull=False)
                .values("account_id", "account__org_id", "api_key_prefix").annotate(spend=Sum("credits_micros"))
                .filter(spend__gte=max(minimum_micros, 1)).order_by("account_id", "api_key_prefix")):
        rows.append(HourSpend(row["account__org_id"], row["account_id"], row["api_key_prefix"], row["spend"]))
    return rows


def hourly_baseline(*, account_id: int, api_key_prefix: str | None, since: datetime, now: datetime) -> Baseline:
    """The baseline of the organization's account (api_key_prefix None) or one key of it:
    spend in the 7 days before the last hour, over the whole hours the scope existed in
    them (`since`: when the organization or key was made), at least 1, at most 168."""
    end = now - WINDOW
    start = max(end - BASELINE_SPAN, since)
    hours = min(BASELINE_HOURS, max(1, int((end - start).total_seconds() // 3600)))
    events = UsageEvent.objects.filter(created_at__gte=start, created_at__lt=end)
    if api_key_prefix is None:
        events = events.filter(account_id=account_id)
    else:
        events = events.filter(api_key_prefix=api_key_prefix, account_id=account_id)
    total = events.aggregate(total=Sum("credits_micros"))["total"] or 0
    return Baseline(total, hours)
