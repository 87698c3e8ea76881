"""Grants that run out of time: the nightly write-off and ending one early."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from django.db import transaction
from django.utils import timezone

from usage.models import EntryKind, Grant, LedgerEntry
from usage.services.writer import Writer, audit, lock_account
from usage.units import credits_str

if TYPE_CHECKING:
    from orgs.services import Actor


def grants_expire(*, now: datetime | None = None, limit: int = 1000) -> int:
    """Write the expiry entries of grants past their expiry. Safe to run twice."""
    now = now or timezone.now()
    org_ids = list(
        Grant.objects.filter(remaining_micros__gt=0, expires_at__lte=now)
        .values_list("account__org_id", flat=True)
        .distinct()[:limit]
    )
    written = 0
    for org_id in org_ids:
        with transaction.atomic():
            writer = Writer(lock_account(org_id), now)
            writer.live_grants()
            if writer.expired:  # else another write got to them after the query above
                writer.save()
                written += len(writer.expired)
    return written


@transaction.atomic
def grant_expire_now(*, grant: Grant, reason: str, actor: Actor = None) -> LedgerEntry | None:
    """End a grant early (the previous period's plan allowance when a new one starts)."""
    account = lock_account(grant.account.org_id)
    grant = Grant.objects.get(pk=grant.pk)
    if grant.remaining_micros == 0:
        return None
    writer = Writer(account, timezone.now())
    entry = writer.write(
        EntryKind.EXPIRY, -grant.remaining_micros, [(grant, -grant.remaining_micros)], reason=reason,
        idempotency_key=f"expiry:{grant.pk}",
    )
    writer.save()
    audit(account.org_id, "credits.expired", actor, grant=grant.pk, amount=credits_str(entry.amount_micros), reason=reason)
    return entry


@transaction.atomic
def grant_expiry_extend(*, org_id: int, reference: str, expires_at: datetime, actor: Actor = None) -> int:
    """Move the expiry of `org_id`'s live grants labelled `reference` later, to
    `expires_at` (a trial extended by staff keeps its allowance to the new end).
    No entry: no credits move, only when they will. Grants already expired, or
    expiring later than `expires_at`, are left as they are. Returns how many moved."""
    now = timezone.now()
    lock_account(org_id)
    moved = Grant.objects.filter(
        account__org_id=org_id, reference=reference, remaining_micros__gt=0, expires_at__gt=now,
        expires_at__lt=expires_at,
    ).update(expires_at=expires_at)
    if moved:
        audit(org_id, "credits.expiry_extended", actor, reference=reference, expires_at=expires_at.isoformat())
    return moved
