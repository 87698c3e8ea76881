"""Credits in and out: grants, the strict debit, and staff adjustments.

The common strict debit runs inside PostgreSQL (usage_ledger_debit, in
usage/sql/ledger_functions.sql): one round trip holds the account lock for one
statement and COMMIT. Whatever it does not handle falls back to the Python
writer (usage.services.writer), which makes the same decisions.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from django.db import transaction
from django.utils import timezone

from billing_project.errors import Conflict, InvalidRequest
from orgs.services import audit_fields
from usage.errors import IdempotencyConflict, InsufficientCredits, SpendLimitReached
from usage.models import DEFAULT_PRIORITY, EntryKind, Grant, GrantSource, LedgerEntry, Transfer
from usage.services import store
from usage.services.limits import limit_refusals_announced
from usage.services.writer import (
    Writer,
    audit,
    existing_entry,
    lock_account,
    month_start,
    require_affordable,
    require_positive,
)
from usage.units import credits_str

if TYPE_CHECKING:
    from orgs.models import Organization
    from orgs.services import Actor

# Tests turn this off to run the same cases through the Python writer.
SERVER_DEBIT = True


def server_debit(
    org_id: int, amount_micros: int, *, now: datetime, entry_key: str | None, member_id: int | None, entry: dict,
    audit: dict[str, Any], plan_code: str | None = None, event: dict | None = None,
) -> dict[str, Any]:
    """Run usage_ledger_debit and raise its refusals. Returns its answer: status
    "ok" (written), "existing_entry"/"existing_event" (a replay), or "fallback"
    (nothing written: the caller decides with the Python writer)."""
    args = {
        "now": now, "entry_key": entry_key, "member_id": member_id, "month": month_start(now), "plan_code": plan_code,
        "entry": entry, "audit": audit, "event": event,
    }
    result = store.debit(org_id, amount_micros, **args)
    if result["status"] == "no_account":
        lock_account(org_id)  # creates it
        result = store.debit(org_id, amount_micros, **args)
    status = result["status"]
    if status == "insufficient_credits":
        account = result["account"]
        available = account["balance_micros"] - account["held_micros"]
        raise InsufficientCredits(balance_micros=account["balance_micros"], available_micros=available,
                                  required_micros=amount_micros)
    if status == "spend_limit_reached":
        raise SpendLimitReached(limit_micros=result["limit"], spent_micros=result["spent"], required_micros=amount_micros,
                                org_id=org_id, member_id=member_id, month=month_start(now))
    return result


@transaction.atomic
def credits_grant(
    *,
    org: Organization,
    amount_micros: int,
    source: str,
    idempotency_key: str | None = None,
    expires_at: datetime | None = None,
    priority: int | None = None,
    reference: str = "",
    reason: str = "",
    stripe_object_id: str = "",
    staff_user=None,
    transfer: Transfer | None = None,
    actor: Actor = None,
) -> LedgerEntry:
    """Add a bucket of credits. Replaying `idempotency_key` returns the first entry."""
    require_positive(amount_micros)
    if source not in GrantSource.values:
        raise InvalidRequest(f"Unknown grant source “{source}”.", code="invalid_source")
    now = timezone.now()
    if expires_at is not None and expires_at <= now:
        raise InvalidRequest("A grant cannot expire in the past.", code="invalid_expiry")
    account = lock_account(org.pk)
    existing = existing_entry(account, idempotency_key)
    if existing is not None:
        return existing
    writer = Writer(account, now)
    # Credits arriving while in debt pay the debt off first.
    covered_debt = min(account.debt_micros, amount_micros)
    grant = Grant.objects.create(
        account=account,
        source=source,
        amount_micros=amount_micros,
        remaining_micros=0,
        expires_at=expires_at,
        priority=DEFAULT_PRIORITY[source] if priority is None else priority,
        reference=reference or stripe_object_id,
    )
    backed = amount_micros - covered_debt
    kind = EntryKind.TRANSFER_IN if source == GrantSource.TRANSFER_IN else (
        EntryKind.ADJUSTMENT if source == GrantSource.ADJUSTMENT else EntryKind.GRANT
    )
    entry = writer.write(
        kind, amount_micros, [(grant, backed)] if backed else [],
        grant=grant, reason=reason or grant.get_source_display(), idempotency_key=idempotency_key,
        stripe_object_id=stripe_object_id, staff_user=staff_user, transfer=transfer,
        metadata={"source": source, **({"debt_repaid": credits_str(covered_debt)} if covered_debt else {})},
    )
    writer.save()
    audit(
        org.pk, "credits.granted", actor, amount=credits_str(amount_micros), source=source, grant=grant.pk,
        entry=entry.pk, balance_after=credits_str(account.balance_micros),
        expires_at=expires_at.isoformat() if expires_at else None,
    )
    return entry


@limit_refusals_announced()
def credits_debit(
    *,
    org: Organization,
    amount_micros: int,
    idempotency_key: str,
    member=None,
    kind: str = EntryKind.USAGE,
    reason: str = "",
    metadata: dict | None = None,
    actor: Actor = None,
) -> LedgerEntry:
    """Check-and-debit: spend `amount_micros` now, or refuse with 402 and write nothing.

    Accounts whose plan allows overage are never refused: what the grants do
    not cover becomes debt, billed in arrears.

    Called outside a transaction, the common case is one statement
    (usage_ledger_debit) and so its own transaction: lock, check, write and
    commit without a round trip to the client while the lock is held. Inside
    the caller's transaction it joins that transaction.
    """
    require_positive(amount_micros)
    member_id = member.pk if member is not None else None
    if SERVER_DEBIT:
        now = timezone.now()
        result = server_debit(
            org.pk, amount_micros, now=now, entry_key=idempotency_key, member_id=member_id,
            entry={"kind": kind, "reason": reason, "metadata": metadata or {}},
            audit=audit_fields(org=org.pk, action=f"credits.{kind}", actor=actor,
                               data={"amount": credits_str(-amount_micros)}),
        )
        if result["status"] == "ok":
            writer = Writer.applied(result, now)
            entry = LedgerEntry(
                id=result["entry_id"], account=writer.account, kind=kind, amount_micros=-amount_micros,
                balance_after_micros=result["balance_after"], grant_id=result["grant_id"], member=member,
                reason=reason, idempotency_key=idempotency_key, metadata=metadata or {}, created_at=now,
            )
            entry._state.adding, entry._state.db = False, "default"
            writer.save()
            return entry
        if result["status"] == "existing_entry":
            return _replayed_debit(result["entry"], amount_micros, kind)
        # "fallback": the Python writer decides, under the lock, in a transaction of its own.
    with transaction.atomic():
        return _debit_in_python(org, amount_micros, idempotency_key, member, kind, reason, metadata, actor)


def _debit_in_python(org, amount_micros, idempotency_key, member, kind, reason, metadata, actor) -> LedgerEntry:
    member_id = member.pk if member is not None else None
    now = timezone.now()
    writer = Writer.locked(
        org.pk, now, entries=1, entry_key=idempotency_key, member_ids=[member_id] if member_id else None,
        month=month_start(now),
    )
    if writer.loaded.existing_entry is not None:
        return _replayed_debit(writer.loaded.existing_entry, amount_micros, kind)
    account = writer.account
    writer.live_grants()  # writes off expired grants, so the check below sees the true balance
    require_affordable(writer, amount_micros, member_id)
    entry = writer.write(
        kind, -amount_micros, writer.take(amount_micros), member=member, reason=reason,
        idempotency_key=idempotency_key, metadata=metadata or {},
    )
    writer.spend(member_id, amount_micros)
    writer.audit(
        f"credits.{kind}", actor, amount=credits_str(-amount_micros), entry=entry.pk,
        balance_after=credits_str(account.balance_micros),
    )
    writer.save()
    return entry


def _replayed_debit(existing: dict, amount_micros: int, kind: str) -> LedgerEntry:
    """The entry a debit's idempotency key already wrote, if it was this same debit."""
    if existing["amount_micros"] != -amount_micros or existing["kind"] != kind:
        raise IdempotencyConflict()
    return LedgerEntry.objects.get(pk=existing["id"])


@transaction.atomic
def credits_adjust(
    *, org: Organization, amount_micros: int, reason: str, staff_user, idempotency_key: str | None = None,
    expires_at: datetime | None = None,
) -> LedgerEntry:
    """A staff correction: a compensating entry with a required reason.

    Positive adds an adjustment grant; negative takes credits back in burn
    order, never more than is available.
    """
    reason = (reason or "").strip()
    if not reason:
        raise InvalidRequest("An adjustment needs a reason.", code="reason_required")
    if amount_micros > 0:
        return credits_grant(
            org=org, amount_micros=amount_micros, source=GrantSource.ADJUSTMENT, reason=reason,
            staff_user=staff_user, idempotency_key=idempotency_key, expires_at=expires_at, actor=staff_user,
        )
    require_positive(-amount_micros)
    account = lock_account(org.pk)
    existing = existing_entry(account, idempotency_key)
    if existing is not None:
        return existing
    writer = Writer(account, timezone.now())
    writer.live_grants()
    if -amount_micros > account.available_micros:
        raise Conflict(
            f"Only {credits_str(max(account.available_micros, 0))} credits are available to take back.",
            code="adjustment_exceeds_available",
        )
    entry = writer.write(
        EntryKind.ADJUSTMENT, amount_micros, writer.take(-amount_micros), reason=reason, staff_user=staff_user,
        idempotency_key=idempotency_key,
    )
    writer.save()
    audit(org.pk, "credits.adjusted", staff_user, amount=credits_str(amount_micros), reason=reason, entry=entry.pk)
    return entry
