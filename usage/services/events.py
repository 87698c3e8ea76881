"""Recording usage: price each event from the rate card, decide its billing
mode from the provider key on record, check-and-debit it, keep it.

A usage event without a hold is a strict check-and-debit: if the account (or
the member's monthly cap) cannot cover it, nothing is recorded and the caller
gets a 402. A batch is one transaction under one account lock; each event in
it is decided on its own, in order, and answered on its own.

Idempotency: an event's key is unique per account. Replaying a key with the
same request returns the event as first recorded (same charge, same balance
after); with a different request it is a conflict (409). "The same request"
is a fingerprint of the event's fields as the caller sent them (a server
default such as occurred_at = now is not part of it).
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from django.db import transaction
from django.utils import timezone

from billing_project.errors import InvalidRequest, NotFound, TollgateError
from orgs.models import Membership
from orgs.services import audit_fields
from usage.errors import IdempotencyConflict, InsufficientCredits
from usage.models import (
    BillingMode,
    CreditAccount,
    EntryKind,
    Hold,
    Meter,
    ProviderKey,
    UsageEvent,
)
from usage.services import _store, ledger
from usage.services.ledger import (
    _lock_and_load,
    _locked_hold,
    _Writer,
    capture_locked,
    month_start,
    require_affordable,
    server_debit,
)
from usage.services.rates import Price, current_card
from usage.units import charge_micros, credits_str

if TYPE_CHECKING:
    from accounts.models import User
    from orgs.models import Organization
    from orgs.services import Actor

MAX_BATCH = 1000
MAX_QUANTITY = Decimal("1000000000000")  # 10^12 units in one event
# A charge must fit the ledger's 64-bit integers with room to spare.
MAX_CHARGE_MICROS = 10**15


@dataclass
class UsageInput:
    """One usage event as a caller states it (the API's serializer builds these)."""

    idempotency_key: str
    meter: str
    quantity: Decimal
    model: str = ""
    member: User | None = None
    member_email: str = ""
    provider_key_id: int | None = None
    workflow_run_id: str = ""
    occurred_at: datetime | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    def fingerprint(self) -> str:
        quantity = self.quantity.normalize() if isinstance(self.quantity, Decimal) else self.quantity
        parts = [
            self.meter, str(quantity), self.model, str(self.member.pk) if self.member else "",
            self.member_email.lower() if self.member_email else "", str(self.provider_key_id or ""),
            self.workflow_run_id, self.occurred_at.isoformat() if self.occurred_at else "",
            json.dumps(self.metadata, sort_keys=True, default=str) if self.metadata else "",
        ]
        return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()


@dataclass(slots=True)
class RecordedEvent:
    """A usage event as `usage_record_batch` and captures record it: the row's fields
    without a model instance (a batch makes a thousand). Replays carry the UsageEvent."""

    pk: int
    idempotency_key: str
    meter: Meter
    model: str
    quantity: Decimal
    credits_per_unit: Decimal
    credits_micros: int
    billing_mode: str
    provider_key_id: int | None
    member: User | None
    workflow_run_id: str
    hold_id: int | None
    ledger_entry_id: int | None
    occurred_at: datetime
    balance_after_micros: int
    metadata: dict

    @property
    def member_id(self) -> int | None:
        return self.member.pk if self.member is not None else None


@dataclass
class RecordedUsage:
    event: UsageEvent
    replayed: bool = False

    @property
    def balance_after_micros(self) -> int:
        return self.event.balance_after_micros


@dataclass
class BatchItem:
    """The answer for one event of a batch: recorded, replayed, or refused with an error."""

    index: int
    idempotency_key: str
    status: str  # recorded | replayed | refused
    event: UsageEvent | RecordedEvent | None = None
    error: TollgateError | None = None


@dataclass
class _Prepared:
    input: UsageInput
    fingerprint: str
    member: User | None = None
    provider_key: ProviderKey | None = None
    error: TollgateError | None = None
    # priced before the lock, on the plan the org was last seen on
    priced: tuple | None = None
    plan: str = ""
    row: str = ""  # the event's JSON fields but id, account, entry and balance after


def _prepare(org: Organization, inputs: list[UsageInput]) -> list[_Prepared]:
    """Check what can be checked before the lock: fields, meter, member, provider key.
    Two queries at most for the whole batch (members by e-mail, provider keys by id)."""
    card = current_card()
    emails = {i.member_email.strip().lower() for i in inputs if i.member_email and i.member is None}
    member_ids = {i.member.pk for i in inputs if i.member is not None}
    members: dict[str, User] = {}
    known_ids: set[int] = set()
    if emails or member_ids:
        from django.db.models import Q

        rows = Membership.objects.filter(org=org).filter(
            Q(user__email__in=emails) | Q(user_id__in=member_ids)
        ).select_related("user")
        for m in rows:
            members[m.user.email.lower()] = m.user
            known_ids.add(m.user_id)
    key_ids = {i.provider_key_id for i in inputs if i.provider_key_id is not None}
    keys = {k.pk: k for k in ProviderKey.objects.filter(org=org, pk__in=key_ids)} if key_ids else {}
    prepared = []
    for item in inputs:
        p = _Prepared(item, item.fingerprint())
        try:
            if not item.idempotency_key or len(item.idempotency_key) > 200:
                raise InvalidRequest("Every usage event needs an idempotency_key of 1 to 200 characters.", code="invalid_request")
            card.meter(item.meter)
            if not isinstance(item.quantity, Decimal) or not item.quantity.is_finite() or item.quantity <= 0:
                raise InvalidRequest("quantity must be a number greater than zero.", code="invalid_quantity")
            if item.quantity > MAX_QUANTITY or item.quantity.as_tuple().exponent < -9:
                raise InvalidRequest("quantity must be at most 10^12 with at most 9 decimal places.", code="invalid_quantity")
            if item.member is not None:
                if item.member.pk not in known_ids:
                    raise InvalidRequest("That member is not in this organization.", code="unknown_member")
                p.member = item.member
            elif item.member_email:
                p.member = members.get(item.member_email.strip().lower())
                if p.member is None:
                    raise InvalidRequest(f"{item.member_email} is not a member of this organization.", code="unknown_member")
            if item.provider_key_id is not None:
                p.provider_key = keys.get(item.provider_key_id)
                if p.provider_key is None:
                    # Another org's key is as unknown as a key that never existed.
                    raise NotFound("No such provider key.", code="provider_key_not_found")
        except TollgateError as error:
            p.error = error
        prepared.append(p)
    return prepared


def _price(p: _Prepared, plan_code: str, now: datetime) -> tuple[Price, str, Decimal, int]:
    """(price, billing mode, credits per unit applied, charge in micros) for one event.

    The billing mode comes from the key on record, never from the caller: usage
    names one of the org's provider keys that was active when it occurred, or it
    is billed in full. With the org's own key, provider usage (tokens, speech,
    images, video) costs nothing here (the provider bills the org); platform
    meters (compute, actions) are billed either way.
    """
    item = p.input
    price = current_card().price(item.meter, item.model, plan_code)
    mode = BillingMode.PLATFORM_KEY
    if p.provider_key is not None and p.provider_key.active_at(item.occurred_at or now):
        if price.provider and p.provider_key.provider != price.provider:
            raise InvalidRequest(
                f"Provider key {p.provider_key.pk} is a {p.provider_key.provider} key; {item.model} is a "
                f"{price.provider} model.", code="provider_key_mismatch",
            )
        mode = BillingMode.OWN_KEY
    per_unit = Decimal(0) if mode == BillingMode.OWN_KEY and price.is_provider_usage else price.credits_per_unit
    charge = charge_micros(item.quantity, per_unit)
    if charge > MAX_CHARGE_MICROS:
        raise InvalidRequest("This event costs more than one event may.", code="invalid_quantity")
    return price, mode, per_unit, charge


def _price_all(prepared: list[_Prepared], plan: str, now: datetime) -> None:
    """Price each valid event on `plan` and pre-render its row, outside the lock."""
    for p in prepared:
        if p.error is not None:
            continue
        try:
            p.priced = _price(p, plan, now)
        except TollgateError as error:
            p.error = error
            continue
        p.plan = plan
        price, mode, per_unit, charge = p.priced
        item = p.input
        p.row = _store.row_dumps({
            "member_id": p.member.pk if p.member is not None else None, "meter_id": price.meter.pk,
            "model": item.model, "quantity": str(item.quantity), "credits_per_unit": str(per_unit),
            "credits_micros": charge, "billing_mode": mode,
            "provider_key_id": p.provider_key.pk if p.provider_key is not None else None,
            "workflow_run_id": item.workflow_run_id, "occurred_at": (item.occurred_at or now).isoformat(),
            "created_at": now.isoformat(), "metadata": item.metadata, "idempotency_key": item.idempotency_key,
            "request_fingerprint": p.fingerprint,
        })[1:-1]


def _event(writer: _Writer, p: _Prepared, *, entry_id: int | None, balance_after_micros: int,
           hold: Hold | None = None) -> RecordedEvent:
    """Queue the event's row (completed with its id, entry and balance after) and return its record."""
    price, mode, per_unit, charge = p.priced
    item = p.input
    event_id = writer.loaded.event_ids.pop(0)
    writer.event(
        f'{{"id":{event_id},"account_id":{writer.account.pk},"ledger_entry_id":{entry_id or "null"},'
        f'"hold_id":{hold.pk if hold is not None else "null"},"balance_after_micros":{balance_after_micros},{p.row}}}'
    )
    return RecordedEvent(
        event_id, item.idempotency_key, price.meter, item.model, item.quantity, per_unit, charge, mode,
        p.provider_key.pk if p.provider_key is not None else None, p.member, item.workflow_run_id,
        hold.pk if hold is not None else None, entry_id, item.occurred_at or writer.now, balance_after_micros,
        item.metadata,
    )


def _replays(account: CreditAccount, keys: list[str]) -> dict[str, UsageEvent]:
    events = UsageEvent.objects.filter(account=account, idempotency_key__in=keys).select_related("meter", "member")
    return {e.idempotency_key: e for e in events}


def _record(
    org: Organization, inputs: list[UsageInput], actor: Actor, *, prepared: list[_Prepared] | None = None
) -> list[BatchItem]:
    """Decide each event in order under one account lock, then debit what was
    recorded as one ledger entry per member (allocated across grants in burn
    order) and write it all in one statement. Each event keeps its own charge
    and the balance right after it; an entry's amount is the sum of its
    member's events, so the ledger attributes every credit to a member just as
    the events do.

    Everything per event that does not depend on the balance (checks, pricing
    on the plan last seen, the row's JSON) happens before the lock, so the
    lock is held for the decisions and one statement. `prepared` is what
    `_prepare(org, inputs)` already returned, when the caller has it."""
    if prepared is None:
        prepared = _prepare(org, inputs)
    now = timezone.now()
    _price_all(prepared, _plan_hint(org.pk), now)
    keys = [p.input.idempotency_key for p in prepared if p.error is None]
    member_ids = sorted({p.member.pk for p in prepared if p.member is not None and p.error is None})
    writer = _lock_and_load(
        org.pk, now, entries=len(member_ids) + 1, events=len(keys), event_keys=keys, member_ids=member_ids or None,
        month=month_start(now),
    )
    account, loaded = writer.account, writer.loaded
    if any(p.plan != account.plan_code for p in prepared if p.error is None):
        _plan_hints.pop(org.pk, None)
        _price_all(prepared, account.plan_code, now)  # the plan changed: price again, now under the lock
    writer.live_grants()
    strict = not account.overage_allowed
    results: list[BatchItem] = []
    seen: dict[str, tuple[str, RecordedEvent]] = {}
    replayed: list[BatchItem] = []
    # One entry per member, in the order members first appear: member id ->
    # (entry id, charged events).
    by_member: dict[int | None, tuple[int, list[RecordedEvent]]] = {}
    total = 0
    for index, p in enumerate(prepared):
        key = p.input.idempotency_key
        item = BatchItem(index, key, "refused")
        results.append(item)
        if p.error is not None:
            item.error = p.error
            continue
        first = loaded.existing_events.get(key)
        earlier = seen.get(key)
        if first is not None or earlier is not None:
            fingerprint = first["request_fingerprint"] if first is not None else earlier[0]
            if fingerprint != p.fingerprint:
                item.error = IdempotencyConflict(
                    "This idempotency key was already used for a different usage event.", code="idempotency_key_reused"
                )
            else:
                item.status = "replayed"
                if earlier is not None:
                    item.event = earlier[1]
                else:
                    replayed.append(item)
            continue
        charge = p.priced[3]
        member_id = p.member.pk if p.member is not None else None
        if charge:
            try:
                available = account.available_micros - total
                if strict and charge > available:
                    raise InsufficientCredits(
                        balance_micros=account.balance_micros - total, available_micros=available, required_micros=charge,
                    )
                require_affordable(writer, charge, member_id, strict=False)  # the member's cap
            except TollgateError as error:
                item.error = error
                continue
            writer.spend(member_id, charge)
            total += charge
            if member_id not in by_member:
                by_member[member_id] = (writer.next_entry_id(), [])
        item.status = "recorded"
        item.event = _event(writer, p, entry_id=by_member[member_id][0] if charge else None,
                            balance_after_micros=account.balance_micros - total)
        if charge:
            by_member[member_id][1].append(item.event)
        seen[key] = (p.fingerprint, item.event)
    recorded = [r for r in results if r.status == "recorded"]
    single = len(recorded) == 1
    for entry_id, charged in by_member.values():
        amount = sum(event.credits_micros for event in charged)
        writer.write(
            EntryKind.USAGE, -amount, writer.take(amount), id=entry_id, member=charged[0].member,
            idempotency_key=f"usage:{recorded[0].idempotency_key}" if single else f"usage-batch:{charged[0].pk}",
            reason=(_reason(charged[0].quantity, charged[0].meter) if len(charged) == 1
                    else f"{len(charged)} usage events")[:500],
        )
    if recorded:
        writer.audit(
            "usage.recorded", actor, events=len(recorded), amount=credits_str(-total),
            **({"event": recorded[0].event.pk, "idempotency_key": recorded[0].idempotency_key} if len(recorded) == 1 else {}),
            balance_after=credits_str(account.balance_micros),
        )
        writer.save()
    elif writer.expired:
        writer.save()  # the write-off of expired grants stands on its own
    if replayed:
        originals = _replays(account, [r.idempotency_key for r in replayed])
        for r in replayed:
            r.event = originals[r.idempotency_key]
    return results


def _reason(quantity: Decimal, meter: Meter) -> str:
    """The reason on the entry of one usage event, on both debit paths: "<quantity> <unit> of <meter>"."""
    return f"{quantity.normalize():f} {meter.unit} of {meter.code}"


# The plan an org was last seen on, to price a single event before the lock;
# usage_ledger_debit checks it against the locked account and falls back to
# the Python writer (which prices under the lock) when it has changed.
_plan_hints: dict[int, tuple[str, float]] = {}
PLAN_HINT_TTL = 30.0


def _plan_hint(org_id: int) -> str:
    hint = _plan_hints.get(org_id)
    if hint is None or hint[1] < time.monotonic():
        plan = CreditAccount.objects.filter(org_id=org_id).values_list("plan_code", flat=True).first() or "free"
        hint = _plan_hints[org_id] = (plan, time.monotonic() + PLAN_HINT_TTL)
    return hint[0]


def _record_one_in_database(org: Organization, p: _Prepared, actor: Actor) -> RecordedUsage | None:
    """One event through usage_ledger_debit: lock, check, debit and keep it in one
    statement. None when the Python writer must decide (nothing was written)."""
    now = timezone.now()
    plan = _plan_hint(org.pk)
    price, mode, per_unit, charge = _price(p, plan, now)
    item = p.input
    member_id = p.member.pk if p.member is not None else None
    reason = _reason(item.quantity, price.meter)[:500]
    row = {
        "member_id": member_id, "meter_id": price.meter.pk, "model": item.model, "quantity": item.quantity,
        "credits_per_unit": per_unit, "billing_mode": mode,
        "provider_key_id": p.provider_key.pk if p.provider_key is not None else None,
        "workflow_run_id": item.workflow_run_id, "occurred_at": item.occurred_at, "metadata": item.metadata,
        "idempotency_key": item.idempotency_key, "request_fingerprint": p.fingerprint,
    }
    result = server_debit(
        org.pk, charge, now=now, entry_key=f"usage:{item.idempotency_key}" if charge else None, member_id=member_id,
        entry={"kind": EntryKind.USAGE, "reason": reason, "metadata": {}}, plan_code=plan, event=row,
        audit=audit_fields(org=org.pk, action="usage.recorded", actor=actor, data={
            "events": 1, "amount": credits_str(-charge), "idempotency_key": item.idempotency_key}),
    )
    status = result["status"]
    if status == "existing_event":
        if result["event"]["request_fingerprint"] != p.fingerprint:
            raise IdempotencyConflict(
                "This idempotency key was already used for a different usage event.", code="idempotency_key_reused"
            )
        original = UsageEvent.objects.select_related("meter", "member").get(pk=result["event"]["id"])
        return RecordedUsage(original, replayed=True)
    if status != "ok":
        _plan_hints.pop(org.pk, None)
        return None
    writer = _Writer.applied(result, now)
    event = UsageEvent(
        id=result["event_id"], account=writer.account, member=p.member, meter=price.meter, model=item.model,
        quantity=item.quantity, credits_per_unit=per_unit, credits_micros=charge,
        balance_after_micros=result["balance_after"], billing_mode=mode, provider_key=p.provider_key,
        workflow_run_id=item.workflow_run_id, occurred_at=item.occurred_at or now, created_at=now,
        metadata=item.metadata, idempotency_key=item.idempotency_key, request_fingerprint=p.fingerprint,
        ledger_entry_id=result["entry_id"],
    )
    event._state.adding, event._state.db = False, "default"
    writer.save()
    return RecordedUsage(event)


def usage_record(*, org: Organization, event: UsageInput, actor: Actor = None) -> RecordedUsage:
    """Price and check-and-debit one usage event, or refuse (402, 400, 404, 409) and record nothing.

    Like credits_debit, outside a transaction the common case is one statement."""
    prepared = None
    if ledger.SERVER_DEBIT:
        prepared = _prepare(org, [event])
        if prepared[0].error is not None:
            raise prepared[0].error
        recorded = _record_one_in_database(org, prepared[0], actor)
        if recorded is not None:
            return recorded
    with transaction.atomic():
        # The fallback reuses the checks above rather than query members and keys again.
        (result,) = _record(org, [event], actor, prepared=prepared)
        if result.error is not None:
            raise result.error
    recorded = result.event
    if not isinstance(recorded, UsageEvent):
        recorded = UsageEvent.objects.select_related("meter", "member").get(pk=recorded.pk)
    return RecordedUsage(recorded, replayed=result.status == "replayed")


@transaction.atomic
def usage_record_batch(*, org: Organization, events: list[UsageInput], actor: Actor = None) -> list[BatchItem]:
    """Up to 1,000 events in one transaction, each decided (and idempotent) on its own, in order."""
    if not events:
        raise InvalidRequest("Send at least one event.", code="invalid_request")
    if len(events) > MAX_BATCH:
        raise InvalidRequest(f"A batch holds at most {MAX_BATCH} events.", code="batch_too_large")
    return _record(org, events, actor)


@transaction.atomic
def hold_capture_events(
    *, org: Organization, hold_id: int, events: list[UsageInput], actor: Actor = None
) -> tuple[Hold, list[UsageEvent]]:
    """Capture a hold with the usage events the run was made of: their total is
    debited (never refused: the hold gated the work) and each event is kept,
    linked to the hold and the capture entry. Capturing again with the same
    events returns the first capture; with other events, 409."""
    if not events or len(events) > MAX_BATCH:
        raise InvalidRequest(f"Send 1 to {MAX_BATCH} events.", code="invalid_request")
    prepared = _prepare(org, events)
    for p in prepared:
        if p.error is not None:
            raise p.error
    account, hold = _locked_hold(org, hold_id)
    now = timezone.now()
    _price_all(prepared, account.plan_code, now)
    for p in prepared:
        if p.error is not None:
            raise p.error
    total = sum(p.priced[3] for p in prepared)
    if hold.status != "captured":
        keys = [p.input.idempotency_key for p in prepared]
        if len(set(keys)) != len(keys) or UsageEvent.objects.filter(account=account, idempotency_key__in=keys).exists():
            raise IdempotencyConflict("An idempotency key of these events was already used.")

    def queue(writer: _Writer, entry) -> None:
        balance = writer.account.balance_micros + total
        for p in prepared:
            balance -= p.priced[3]
            _event(writer, p, entry_id=entry.pk if entry is not None and p.priced[3] else None,
                   balance_after_micros=balance, hold=hold)

    hold, _entry = capture_locked(
        account, hold, total, actor=actor, events=len(prepared), queue_events=queue,
        reason=f"Captured with {len(prepared)} usage event{'s' if len(prepared) != 1 else ''}",
    )
    return hold, list(hold.usage_events.select_related("meter", "member").order_by("id"))
