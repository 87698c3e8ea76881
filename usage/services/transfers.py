"""Sending bought credits to another organization."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.db import transaction
from django.utils import timezone

from billing_project.errors import InvalidRequest
from usage.errors import IdempotencyConflict, InsufficientCredits
from usage.models import TRANSFERABLE_SOURCES, CreditAccount, EntryKind, Grant, GrantSource, Transfer
from usage.services.credits import credits_grant
from usage.services.writer import Writer, audit, lock_accounts, require_positive
from usage.units import credits_str

if TYPE_CHECKING:
    from orgs.models import Organization
    from orgs.services import Actor


def transferable_micros(grants: list[Grant]) -> int:
    return sum(g.remaining_micros for g in grants if g.source in TRANSFERABLE_SOURCES)


def transfer_sendable_micros(*, account: CreditAccount, grants: list[Grant]) -> int:
    """How much `credits_transfer` would let this account send: its purchased
    credits left in live (unexpired) grants, never more than is available
    after holds. The send page shows this same number (usage.selectors)."""
    return max(0, min(transferable_micros(grants), account.available_micros))


@transaction.atomic
def credits_transfer(
    *,
    from_org: Organization,
    to_org: Organization,
    amount_micros: int,
    idempotency_key: str,
    note: str = "",
    sent_by=None,
    actor: Actor = None,
) -> Transfer:
    """Send purchased credits to another organization, once per idempotency key.

    Only credits bought (purchase, auto top-up) can be sent, never trial, plan,
    promo, adjustment or received credits, and never more than is available
    after holds. The receiver gets a non-expiring grant it cannot send on.
    """
    require_positive(amount_micros)
    if from_org.pk == to_org.pk:
        raise InvalidRequest("Credits cannot be sent to the same organization.", code="transfer_to_self")
    note = (note or "").strip()[:280]
    accounts = lock_accounts([from_org.pk, to_org.pk])
    sender = accounts[from_org.pk]
    existing = Transfer.objects.filter(from_account=sender, idempotency_key=idempotency_key).first()
    if existing is not None:
        if existing.amount_micros != amount_micros or existing.to_account.org_id != to_org.pk:
            raise IdempotencyConflict()
        return existing
    now = timezone.now()
    writer = Writer(sender, now)
    paid = [g for g in writer.live_grants() if g.source in TRANSFERABLE_SOURCES]
    sendable = transfer_sendable_micros(account=sender, grants=paid)
    if amount_micros > sendable:
        raise InsufficientCredits(
            balance_micros=sender.balance_micros, available_micros=sendable, required_micros=amount_micros,
        )
    transfer = Transfer.objects.create(
        from_account=sender, to_account=accounts[to_org.pk], amount_micros=amount_micros, note=note,
        sent_by=sent_by, idempotency_key=idempotency_key,
    )
    writer.write(
        EntryKind.TRANSFER_OUT, -amount_micros, writer.take(amount_micros, grants=paid), transfer=transfer,
        member=sent_by, reason=note or f"Sent to {to_org.name}", idempotency_key=f"transfer:{transfer.pk}:out",
    )
    writer.save()
    credits_grant(
        org=to_org, amount_micros=amount_micros, source=GrantSource.TRANSFER_IN, transfer=transfer,
        reference=f"transfer:{transfer.pk}", reason=note or f"From {from_org.name}",
        idempotency_key=f"transfer:{transfer.pk}:in", actor=actor,
    )
    audit(from_org.pk, "credits.transfer_sent", actor, transfer=transfer.pk, to_org=to_org.slug,
           amount=credits_str(amount_micros), note=note)
    return transfer
