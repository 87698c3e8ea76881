"""Refunds and disputes: taking back, freezing and unfreezing a purchase's credits."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.db import transaction
from django.utils import timezone

from usage.models import EntryKind, Grant, LedgerEntry
from usage.services.writer import Writer, audit, existing_entry, lock_account, require_positive
from usage.units import credits_str

if TYPE_CHECKING:
    from orgs.services import Actor


@dataclass(frozen=True)
class Clawback:
    entry: LedgerEntry | None
    clawed_micros: int
    shortfall_micros: int


@transaction.atomic
def credits_clawback(
    *, grant: Grant, amount_micros: int, idempotency_key: str, stripe_object_id: str = "", reason: str = "",
    actor: Actor = None,
) -> Clawback:
    """Take back up to `amount_micros` of a refunded purchase, never more than the
    grant has left; the part already spent is the shortfall, for the caller to record."""
    require_positive(amount_micros)
    account = lock_account(grant.account.org_id)
    existing = existing_entry(account, idempotency_key)
    if existing is not None:
        clawed = -existing.amount_micros
        return Clawback(existing, clawed, int(existing.metadata.get("shortfall_micros", 0)))
    grant = Grant.objects.get(pk=grant.pk)
    clawed = min(amount_micros, grant.remaining_micros)
    shortfall = amount_micros - clawed
    entry = None
    if clawed:
        writer = Writer(account, timezone.now())
        entry = writer.write(
            EntryKind.CLAWBACK, -clawed, [(grant, -clawed)], reason=reason or "Refunded",
            stripe_object_id=stripe_object_id, idempotency_key=idempotency_key,
            metadata={"requested_micros": amount_micros, "shortfall_micros": shortfall},
        )
        writer.save()
    audit(
        account.org_id, "credits.clawed_back", actor, grant=grant.pk, requested=credits_str(amount_micros),
        clawed=credits_str(clawed), shortfall=credits_str(shortfall), stripe_object_id=stripe_object_id,
    )
    return Clawback(entry, clawed, shortfall)


@transaction.atomic
def credits_freeze(
    *, grant: Grant, amount_micros: int, idempotency_key: str, stripe_object_id: str = "", reason: str = "",
    actor: Actor = None,
) -> LedgerEntry | None:
    """Take up to `amount_micros` of a grant out of use while a dispute is open."""
    require_positive(amount_micros)
    account = lock_account(grant.account.org_id)
    existing = existing_entry(account, idempotency_key)
    if existing is not None:
        return existing
    grant = Grant.objects.get(pk=grant.pk)
    frozen = min(amount_micros, grant.remaining_micros)
    if not frozen:
        return None
    writer = Writer(account, timezone.now())
    entry = writer.write(
        EntryKind.FREEZE, -frozen, [(grant, -frozen)], reason=reason or "Payment disputed",
        stripe_object_id=stripe_object_id, idempotency_key=idempotency_key,
    )
    grant.frozen_micros += frozen
    grant.save(update_fields=["frozen_micros"])
    writer.save()
    audit(account.org_id, "credits.frozen", actor, grant=grant.pk, amount=credits_str(frozen), stripe_object_id=stripe_object_id)
    return entry


@transaction.atomic
def credits_unfreeze(
    *, grant: Grant, idempotency_key: str, stripe_object_id: str = "", reason: str = "", actor: Actor = None
) -> LedgerEntry | None:
    """Give back what a dispute froze (the dispute was won)."""
    account = lock_account(grant.account.org_id)
    existing = existing_entry(account, idempotency_key)
    if existing is not None:
        return existing
    grant = Grant.objects.get(pk=grant.pk)
    amount = grant.frozen_micros
    if not amount:
        return None
    # A grant that expired while frozen gives nothing back.
    if grant.expires_at is not None and grant.expires_at <= timezone.now():
        grant.frozen_micros = 0
        grant.save(update_fields=["frozen_micros"])
        return None
    writer = Writer(account, timezone.now())
    entry = writer.write(
        EntryKind.UNFREEZE, amount, [(grant, amount)], reason=reason or "Dispute resolved in your favour",
        stripe_object_id=stripe_object_id, idempotency_key=idempotency_key,
    )
    grant.frozen_micros = 0
    grant.save(update_fields=["frozen_micros"])
    writer.save()
    audit(account.org_id, "credits.unfrozen", actor, grant=grant.pk, amount=credits_str(amount), stripe_object_id=stripe_object_id)
    return entry
