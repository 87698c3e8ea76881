"""Deployment-wide figures of usage's scheduled upkeep, read at /metrics scrape time."""

from __future__ import annotations

from datetime import datetime

from usage.models import Hold, HoldStatus


def hold_oldest_overdue_at(now: datetime) -> datetime | None:
    """When the longest-overdue open hold expired (beat's `usage.holds_expire` has
    not released it yet); None when none is overdue. Reads the partial index
    `hold_open_expiry`."""
    return (
        Hold.objects.filter(status=HoldStatus.OPEN, expires_at__lte=now)
        .order_by("expires_at").values_list("expires_at", flat=True).first()
    )
