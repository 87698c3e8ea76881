"""API keys' spend this month and the meters they may be limited to (the keys page)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from django.db.models import Sum
from django.utils import timezone

from usage.models import KeySpend, UsageEvent
from usage.services.rates import current_card
from usage.services.writer import month_began, month_start

if TYPE_CHECKING:
    from accounts.models import OrgAPIKey
    from orgs.models import Organization


def key_meter_choices() -> list[tuple[str, str]]:
    """(code, name) of the active meters, by code: what a key's meter list may name."""
    return sorted((code, meter.name) for code, meter in current_card().meters.items() if meter.is_active)


def api_key_spend_this_month(org: Organization, keys: Sequence[OrgAPIKey], *, now: datetime | None = None
                             ) -> dict[str, int]:
    """Micro-credits each key spent this calendar month (UTC), by prefix.

    A key carrying a limit: what counts against it (KeySpend, kept under the
    account lock, captures included). Any other key: its usage events'
    charges, as the runaway breaker counts them (index on api_key_prefix, created_at)."""
    now = now or timezone.now()
    month = month_start(now)
    limited = [k.prefix for k in keys if k.monthly_limit_micros is not None]
    others = [k.prefix for k in keys if k.monthly_limit_micros is None]
    spent = dict.fromkeys((k.prefix for k in keys), 0)
    if limited:
        spent.update(KeySpend.objects.filter(account__org=org, api_key_prefix__in=limited, month=month)
                     .values_list("api_key_prefix", "spent_micros"))
    if others:
        rows = (UsageEvent.objects.filter(account__org=org, api_key_prefix__in=others, created_at__gte=month_began(now))
                .values("api_key_prefix").annotate(total=Sum("credits_micros")).order_by())
        spent.update((row["api_key_prefix"], row["total"] or 0) for row in rows)
    return spent
