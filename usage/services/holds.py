"""Holds: credits reserved before a run, captured or released after it."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from accounts.models import OrgAPIKey
from billing_project.errors import Conflict, InvalidRequest, NotFound
from usage.errors import IdempotencyConflict
from usage.models import CreditAccount, EntryKind, Hold, HoldStatus, LedgerEntry
from usage.services import routing
from usage.services.pause import api_key_prefix_of, key_limited, key_require_unpaused
from usage.services.pricing import account_features, feature_require
from usage.services.rates import current_card
from usage.services.limits import limit_refusals_announced
from usage.services.writer import (
    Writer,
    existing_entry,
    lock_account,
    month_start,
    require_affordable,
    require_non_negative,
    require_positive,
)
from usage.units import credits_str

if TYPE_CHECKING:
    from orgs.models import Organization
    from orgs.services import Actor

DEFAULT_HOLD_TTL = timedelta(minutes=15)
MAX_HOLD_TTL = timedelta(hours=24)


@limit_refusals_announced()
@transaction.atomic
def hold_create(
    *,
    org: Organization,
    amount_micros: int,
    idempotency_key: str | None = None,
    member=None,
    expires_in: timedelta = DEFAULT_HOLD_TTL,
    workflow_run_id: str = "",
    metadata: dict | None = None,
    request_fingerprint: str = "",
    meters: list[str] | None = None,
    actor: Actor = None,
) -> Hold:
    """Reserve credits before a run. Refused with 402 unless available covers it
    and the member's monthly cap and the API key's monthly limit leave room for
    it, or 402 usage_paused from a paused API key. The hold remembers the key
    that made it: while open it counts against that key's limit.
    `meters` names what the run will record: a meter that needs a feature the
    plan lacks refuses the hold (403 feature_not_in_plan), an unknown one is 400."""
    key_require_unpaused(actor)
    require_positive(amount_micros)
    if not timedelta(seconds=1) <= expires_in <= MAX_HOLD_TTL:
        raise InvalidRequest("expires_in must be between 1 second and 24 hours.", code="invalid_expiry")
    card = current_card()
    named = [card.meter(code) for code in dict.fromkeys(meters or ())]
    # The org's, or (member_usage: personal) the member's personal account, labelled for the org.
    payer = routing.payer_require(org, member) if routing.members_pay(org) else None
    for_org = org if payer is not None else None
    # Routed: the key's limit row before the paying account (see usage.services.routing).
    budget = routing.key_budget_lock(org, actor.prefix, timezone.now()) if payer and key_limited(actor) else None
    account = lock_account(payer.org_id if payer is not None else org.pk)
    if idempotency_key:
        existing = Hold.objects.filter(account=account, for_org=for_org, idempotency_key=idempotency_key).first()
        if existing is not None:
            if existing.amount_micros != amount_micros or (
                request_fingerprint and existing.request_fingerprint
                and existing.request_fingerprint != request_fingerprint
            ):
                raise IdempotencyConflict()
            return existing
    gated = [meter for meter in named if meter.required_feature]
    if gated:  # decided on the locked row, like the events the hold is for
        features = account_features(account)
        for meter in gated:
            feature_require(meter, features, account.plan_code)
    now = timezone.now()
    member_id = member.pk if member is not None else None
    writer = Writer(account, now)
    writer.load(entries=0, member_ids=[member_id] if member_id and payer is None else None, month=month_start(now))
    if payer is not None:
        routing.route(writer, org=org, member=member, payer=payer)
        writer.key = budget
    elif key_limited(actor):
        writer.load_key(actor.prefix)
    writer.live_grants()
    # Holds are never covered by overage: a negative balance blocks new work until paid.
    require_affordable(writer, amount_micros, member_id, strict=True)
    hold = Hold.objects.create(
        account=account, member=member, amount_micros=amount_micros, expires_at=now + expires_in,
        idempotency_key=idempotency_key, workflow_run_id=workflow_run_id, metadata=metadata or {},
        request_fingerprint=request_fingerprint, for_org=for_org, api_key_prefix=api_key_prefix_of(actor),
    )
    account.held_micros += amount_micros
    (writer.audit if payer is None else writer.audit_routed)(
        "hold.created", actor, hold=hold.pk, amount=credits_str(amount_micros),
    )
    writer.save()
    return hold


def hold_lock(org: Organization, hold_id: int) -> tuple[CreditAccount, Hold]:
    """Lock one of `org`'s holds and the account it reserves: the org's own, or
    a member's personal account for a hold made for `org` (member_usage:
    personal). Any other hold, including one a member's personal organization
    holds for itself or one held for another org, is 404."""
    found = Hold.objects.filter(pk=hold_id).filter(
        Q(account__org=org, for_org__isnull=True) | Q(for_org=org)
    ).values_list("account__org_id", "for_org_id", "api_key_prefix").first()
    if found is None:
        raise NotFound("No such hold.", code="hold_not_found")
    payer_org_id, for_org_id, prefix = found
    if for_org_id is not None and prefix:
        # A routed hold's key limit row before the paying account (see usage.services.routing).
        routing.key_budget_lock(org, prefix, timezone.now())
    account = lock_account(payer_org_id)
    hold = Hold.objects.select_for_update().filter(pk=hold_id, account=account).first()
    if hold is None:
        raise NotFound("No such hold.", code="hold_not_found")
    return account, hold


@limit_refusals_announced()
@transaction.atomic
def hold_capture(
    *,
    org: Organization,
    hold_id: int,
    amount_micros: int | None = None,
    member=None,
    reason: str = "",
    metadata: dict | None = None,
    actor: Actor = None,
) -> tuple[Hold, LedgerEntry | None]:
    """Close a hold at what its run used and free the rest of the reservation.

    `amount_micros` is the run's whole cost, usage recorded against the hold
    while it was open included (that is debited already); None captures just
    what was recorded. Less than was recorded is a conflict
    (`capture_below_recorded`). What remains to debit takes what the hold
    still reserves first, which is always capturable: the hold gated the work,
    even when it expired before its capture. What goes past it is a new debit,
    checked like one once the held part is taken: available credits (unless the
    plan allows overage) and the member's monthly cap. When that part cannot be
    covered the capture is refused with 402, records nothing and leaves the hold
    as it was. Capturing twice returns the first capture; capturing a released
    hold is a conflict.
    """
    key_require_unpaused(actor)  # a paused key spends nothing; release stays open to it
    if amount_micros is not None:
        require_non_negative(amount_micros, "The captured amount must be zero or more micro-credits.", "invalid_amount")
    account, hold = hold_lock(org, hold_id)
    return hold_capture_locked(account, hold, amount_micros, member=member, reason=reason, metadata=metadata, actor=actor)


def hold_capture_locked(
    account: CreditAccount, hold: Hold, amount_micros: int | None, *, member=None, reason: str = "",
    metadata: dict | None = None, actor: Actor = None, events: int = 0, queue_events=None,
) -> tuple[Hold, LedgerEntry | None]:
    """Capture a hold whose account and row the caller has locked. `queue_events(writer,
    entry)` may queue the usage events the capture is made of (see usage.services.events)."""
    key = f"hold:{hold.pk}:capture"
    if hold.status == HoldStatus.CAPTURED:
        if amount_micros is not None and hold.captured_micros != amount_micros:
            raise Conflict("This hold was already captured with a different amount.", code="hold_already_captured")
        return hold, existing_entry(account, key)
    if hold.status == HoldStatus.RELEASED:
        raise Conflict("This hold was released; record the usage without it.", code="hold_released")
    recorded = hold.recorded_micros
    if amount_micros is None:
        amount_micros = recorded
    if amount_micros < recorded:
        raise Conflict(
            f"{credits_str(recorded)} credits were recorded against this hold already; capture at least that.",
            code="capture_below_recorded",
        )
    owed = amount_micros - recorded  # what is not debited yet
    reserved = hold.left_micros
    writer = Writer(account, timezone.now())
    member = member or hold.member
    member_id = member.pk if member is not None else None
    beyond = owed - reserved
    routed = hold.for_org_id is not None
    writer.load(entries=1 if owed else 0, events=events,
                member_ids=[member_id] if beyond > 0 and member_id is not None and not routed else None,
                month=month_start(writer.now))
    if routed:
        # Paid by the member's personal account (locked): the org's cap and spend row apply.
        payer = routing.payer_require(hold.for_org, hold.member)
        routing.route(writer, org=hold.for_org, member=hold.member, payer=payer)
        member, member_id = hold.member, hold.member_id
        reason = f"{reason or 'Usage'} for {hold.for_org.name}"[:500]
        if _key_counts(hold, actor):
            writer.key = routing.key_budget_lock(hold.for_org, hold.api_key_prefix, writer.now)  # locked already
    elif _key_counts(hold, actor):
        writer.load_key(hold.api_key_prefix)
    if hold.status == HoldStatus.OPEN:
        writer.release(hold)
    if beyond > 0:
        writer.live_grants()  # what expired is not available
        # Raised before anything is written; the caller's transaction rolls back the rest.
        require_affordable(writer, beyond, member_id, taken_micros=reserved)
    entry = None
    if owed:
        entry = writer.write(
            EntryKind.USAGE, -owed, writer.take(owed), member=member, hold=hold,
            reason=reason, idempotency_key=key, metadata=metadata or {},
        )
        writer.spend(member_id, owed)
    if queue_events is not None:
        queue_events(writer, entry)
    hold.status = HoldStatus.CAPTURED
    hold.captured_micros = amount_micros
    hold.closed_at = writer.now
    hold.save(update_fields=["status", "captured_micros", "closed_at"])
    (writer.audit_routed if routed else writer.audit)(
        "hold.captured", actor, hold=hold.pk, held=credits_str(hold.amount_micros),
        captured=credits_str(amount_micros), balance_after=credits_str(account.balance_micros),
        **({"recorded": credits_str(recorded)} if recorded else {}),
    )
    writer.save()
    return hold, entry


def _key_counts(hold: Hold, actor: Actor) -> bool:
    """Whether a capture of `hold` may count against a key's monthly limit: the hold's
    key, whoever captures it (it reserved from that key's limit, and its capture is
    that key's spend). The key capturing its own hold tells without a query whether
    it carries a limit."""
    if hold.api_key_prefix is None:
        return False
    if isinstance(actor, OrgAPIKey) and actor.prefix == hold.api_key_prefix:
        return key_limited(actor)
    return True


def _close_hold(account: CreditAccount, hold: Hold, status: str, closed_at: datetime, *, action: str,
                actor: Actor) -> None:
    """Free an open hold's reservation. Through the writer, like every change of
    the account's figures, so it is announced as one (available credits grow)."""
    writer = Writer(account, timezone.now())
    freed = hold.left_micros
    writer.release(hold)
    if status == HoldStatus.EXPIRED:
        writer.hold_expired(hold, freed)
    hold.status = status
    hold.closed_at = closed_at
    hold.save(update_fields=["status", "closed_at"])
    data = {"hold": hold.pk, "amount": credits_str(freed)}
    if hold.for_org_id is not None:  # on both trails, as it was created
        writer.audit(action, actor, for_org=hold.for_org.name, **data)
        writer.audit_for(hold.for_org_id, action, actor, paid_by=hold.member.email if hold.member_id else None, **data)
    else:
        writer.audit(action, actor, **data)
    writer.save()


@transaction.atomic
def hold_release(*, org: Organization, hold_id: int, actor: Actor = None) -> Hold:
    """Free a reservation without charging. Releasing twice is harmless."""
    account, hold = hold_lock(org, hold_id)
    if hold.status == HoldStatus.CAPTURED:
        raise Conflict("This hold was already captured.", code="hold_already_captured")
    if hold.status == HoldStatus.OPEN:
        _close_hold(account, hold, HoldStatus.RELEASED, timezone.now(), action="hold.released", actor=actor)
    return hold


def holds_expire(*, now: datetime | None = None, limit: int = 1000) -> int:
    """Release every open hold past its expiry. Safe to run twice or concurrently."""
    now = now or timezone.now()
    due = list(
        Hold.objects.filter(status=HoldStatus.OPEN, expires_at__lte=now)
        .order_by("expires_at")
        .values_list("pk", "account__org_id")[:limit]
    )
    expired = 0
    for hold_id, org_id in due:
        with transaction.atomic():
            account = lock_account(org_id)
            hold = Hold.objects.select_for_update().get(pk=hold_id)
            if hold.status != HoldStatus.OPEN:
                continue  # captured or released while we were getting here
            _close_hold(account, hold, HoldStatus.EXPIRED, now, action="hold.expired", actor="task:holds_expire")
            expired += 1
    return expired
