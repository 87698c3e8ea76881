"""Recording usage: price each event from the rate card, decide its billing
mode from the provider key on record, check-and-debit it, keep it.

A usage event without a hold is a strict check-and-debit: if the account (or
the member's monthly cap) cannot cover it, nothing is recorded and the caller
gets a 402. A batch is one transaction under one account lock; each event in
it is decided on its own, in order, and answered on its own.

An event may name an open hold (`hold_id`): its charge is taken from what the
hold still reserves first (the hold's `used_micros` grows, the account's held
credits shrink), and only the part beyond that is checked like an event
without a hold. The hold rows are locked after the account row, the order
every hold write takes (usage.services.holds).

Idempotency: an event's key is unique per account. Replaying a key with the
same request returns the event as first recorded (same charge, same balance
after); with a different request it is a conflict (409). "The same request"
is a fingerprint of the event's fields as the caller sent them (a server
default such as occurred_at = now is not part of it).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING

from django.db import transaction
from django.utils import timezone

from billing_project.errors import Conflict, InvalidRequest, NotFound, TollgateError
from orgs.services import audit_fields
from usage.errors import HoldBudgetExceeded, IdempotencyConflict, InsufficientCredits, SpendLimitReached
from usage.models import CreditAccount, EntryKind, Hold, HoldStatus, Meter, SpendingToken, UsageEvent
from usage.services import credits, routing
from usage.services.hold_tree import hold_chain, hold_take, hold_untake
from usage.services.holds import hold_capture_locked, hold_lock
from usage.services.pause import api_key_prefix_of, key_limited, key_require_unpaused
from usage.services.limits import limit_reached_announce, limit_refusals_announced
from usage.services.pricing import (
    MAX_BATCH,
    Prepared,
    UsageInput,
    features_check_all,
    meter_gated,
    prepare,
    price_all,
    price_event,
)
from usage.services.tokens import token_check_prepared, token_inputs, token_spend_lock
from usage.services.writer import Writer, month_start, require_affordable
from usage.units import credits_str
from usage.wording import usage_phrase

if TYPE_CHECKING:
    from accounts.models import User
    from orgs.models import Organization
    from orgs.services import Actor

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
    for_org_id: int | None = None
    spending_token_id: int | None = None

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


def _event(writer: Writer, p: Prepared, *, entry_id: int | None, balance_after_micros: int,
           hold: Hold | None = None) -> RecordedEvent:
    """Queue the event's row (completed with its id, entry and balance after) and return its record."""
    priced = p.priced
    item = p.input
    event_id = writer.next_event_id()
    writer.event(
        f'{{"id":{event_id},"account_id":{writer.account.pk},"ledger_entry_id":{entry_id or "null"},'
        f'"hold_id":{hold.pk if hold is not None else "null"},"balance_after_micros":{balance_after_micros},{p.row}}}'
    )
    return RecordedEvent(
        event_id, item.idempotency_key, priced.price.meter, item.model, item.quantity, priced.per_unit,
        priced.charge_micros, priced.mode,
        p.provider_key.pk if p.provider_key is not None else None, p.member, item.workflow_run_id,
        hold.pk if hold is not None else None, entry_id, item.occurred_at or writer.now, balance_after_micros,
        item.metadata, p.for_org_id, p.spending_token_id,
    )


def _replays(account: CreditAccount, keys: list[str], for_org: Organization | None = None) -> dict[str, UsageEvent]:
    events = UsageEvent.objects.filter(account=account, for_org=for_org, idempotency_key__in=keys).select_related(
        "meter", "member")
    return {e.idempotency_key: e for e in events}


def _record(
    org: Organization, inputs: list[UsageInput], actor: Actor, *, prepared: list[Prepared] | None = None,
    token: SpendingToken | None = None,
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
    `prepare(org, inputs)` already returned, when the caller has it. `token`:
    the spending token recording them (usage.services.tokens), whose hold,
    meters and ceiling apply.

    When the org's members pay for their own usage, see `_record_routed`."""
    if prepared is None:
        prepared = prepare(org, inputs, actor=actor)
    _attribute(prepared, actor)
    if token is not None:
        token_check_prepared(token, prepared)
    _holds_attach(org, prepared)
    if routing.members_pay(org):
        return _record_routed(org, prepared, actor, token)
    indexed = list(enumerate(prepared))
    results: dict[int, BatchItem] = {}
    if org.members_paid_since is not None:
        indexed = _replay_routed(org, indexed, results)
        prepared = [p for _index, p in indexed]
    now = timezone.now()
    price_all(prepared, _plan_hint(org.pk), now)
    keys = [p.input.idempotency_key for p in prepared if p.error is None]
    member_ids = sorted({p.member.pk for p in prepared if p.member is not None and p.error is None})
    writer = Writer.locked(
        org.pk, now, entries=len(member_ids) + 1, events=len(keys), event_keys=keys, member_ids=member_ids or None,
        month=month_start(now),
    )
    account = writer.account
    if key_limited(actor):
        writer.load_key(actor.prefix)  # its limit, as it is now, under the lock
    if any(p.plan != account.plan_code for p in prepared if p.error is None):
        _plan_hints.pop(org.pk, None)
        price_all(prepared, account.plan_code, now)  # the plan changed: price again, now under the lock
    results.update(_decide(writer, indexed, actor, token=token))
    return [item for _index, item in sorted(results.items())]


def _record_routed(org: Organization, prepared: list[Prepared], actor: Actor,
                   token: SpendingToken | None = None) -> list[BatchItem]:
    """`_record` for an org whose members pay (usage.services.routing): each event
    is written on its member's personal account, priced on that account's plan
    and labelled for `org`. One writer per paying account, locked in order of
    organization id (as `lock_accounts` does), so that concurrent batches, and
    transfers, always take the same locks in the same order and cannot deadlock."""
    payers = routing.payers_assign(org, prepared)
    now = timezone.now()
    # The key's limit row first, before any paying account (see usage.services.routing).
    budget = routing.key_budget_lock(org, actor.prefix, now) if key_limited(actor) else None
    groups: dict[int, list[tuple[int, Prepared]]] = {}
    for index, p in enumerate(prepared):
        if p.error is None:
            groups.setdefault(p.payer_org_id, []).append((index, p))
    results = {index: BatchItem(index, p.input.idempotency_key, "refused", error=p.error)
               for index, p in enumerate(prepared) if p.error is not None}
    _replay_pooled(org, groups, results)
    for payer_org_id in sorted(groups):
        group = groups[payer_org_id]
        member = group[0][1].member  # a personal organization pays for its one person
        writer = Writer.locked(payer_org_id, now, entries=2, events=len(group), month=month_start(now))
        writer.key = budget
        keys = [p.input.idempotency_key for _index, p in group]
        writer.loaded.existing_events = {
            row["idempotency_key"]: row
            for row in UsageEvent.objects.filter(account=writer.account, for_org=org, idempotency_key__in=keys)
            .values("id", "idempotency_key", "request_fingerprint")
        }
        routing.route(writer, org=org, member=member, payer=payers[member.pk])
        price_all([p for _index, p in group], writer.account.plan_code, now)  # the member's plan
        results.update(_decide(writer, group, actor, for_org=org, token=token))
    return [item for _index, item in sorted(results.items())]


def _replay_pooled(org: Organization, groups: dict[int, list[tuple[int, Prepared]]],
                   results: dict[int, BatchItem]) -> None:
    """Answer from the org's own account the events it recorded there before it let
    members pay (a retry across the switch is a replay, not a second charge), and
    take them out of `groups`."""
    keys = [p.input.idempotency_key for group in groups.values() for _index, p in group]
    firsts = UsageEvent.objects.filter(account__org=org, for_org__isnull=True, idempotency_key__in=keys)
    for payer_org_id, group in list(groups.items()):
        kept = _answer_replays(firsts, group, results)
        if kept:
            groups[payer_org_id] = kept
        else:
            del groups[payer_org_id]


def _replay_routed(org: Organization, indexed: list[tuple[int, Prepared]],
                   results: dict[int, BatchItem]) -> list[tuple[int, Prepared]]:
    """The other way across the switch: in pool mode, answer as replays the events
    a member's personal account paid for `org` while its members paid; the rest,
    to be decided. Only for an org whose members have ever paid (members_paid_since)."""
    keys = [p.input.idempotency_key for _index, p in indexed if p.error is None]
    return _answer_replays(UsageEvent.objects.filter(for_org=org, idempotency_key__in=keys), indexed, results)


def _answer_replays(firsts, indexed: list[tuple[int, Prepared]],
                    results: dict[int, BatchItem]) -> list[tuple[int, Prepared]]:
    """Answer each event whose key `firsts` (usage events recorded elsewhere) already
    holds: a replay when the request is the same, else 409. Returns the others."""
    first_by_key = {e.idempotency_key: e for e in firsts.select_related("meter", "member")} if indexed else {}
    if not first_by_key:
        return indexed
    kept = []
    for index, p in indexed:
        first = first_by_key.get(p.input.idempotency_key) if p.error is None else None
        if first is None:
            kept.append((index, p))
        elif first.request_fingerprint != p.fingerprint:
            results[index] = BatchItem(index, p.input.idempotency_key, "refused", error=IdempotencyConflict(
                "This idempotency key was already used for a different usage event.", code="idempotency_key_reused"))
        else:
            results[index] = BatchItem(index, p.input.idempotency_key, "replayed", event=first)
    return kept


def _holds_attach(org: Organization, prepared: list[Prepared]) -> None:
    """Check, before the lock, that each hold named is one of `org`'s (else 404, as
    for any other org's hold), and attribute an event without a member to the
    hold's: the member a hold is for never changes, and it decides who pays."""
    ids = {p.input.hold_id for p in prepared if p.error is None and p.input.hold_id is not None}
    if not ids:
        return
    found = {
        hold.pk: hold for hold in Hold.objects.of_org(org).filter(pk__in=ids).select_related("member")
    }
    for p in prepared:
        if p.error is not None or p.input.hold_id is None:
            continue
        hold = found.get(p.input.hold_id)
        if hold is None:
            p.error = NotFound("No such hold.", code="hold_not_found")
            continue
        p.locked_rates = hold.locked_rates  # a quote's prices; set when it was made, never changed
        if hold.member_id is not None:
            if p.member is None:
                p.member = hold.member
            elif p.member.pk != hold.member_id:
                p.error = Conflict("This hold reserves credits for another member.", code="hold_member_mismatch")


def _holds_lock(writer: Writer, indexed: list[tuple[int, Prepared]], for_org: Organization | None) -> dict[int, Hold]:
    """Lock the holds the events name, on `writer`'s account (locked already: the
    account row, then hold rows by id, is the order every hold write takes)."""
    ids = sorted({p.input.hold_id for _index, p in indexed if p.error is None and p.input.hold_id is not None})
    if not ids:
        return {}
    rows = Hold.objects.select_for_update().filter(pk__in=ids, account=writer.account, for_org=for_org).order_by("pk")
    return {hold.pk: hold for hold in rows}


def _hold_open(holds: dict[int, Hold], hold_id: int, now: datetime) -> Hold:
    hold = holds.get(hold_id)
    if hold is None:
        # One of the org's, on another balance: made before the org changed who pays.
        raise Conflict("This hold reserves another balance than this usage is paid from; capture or release it.",
                       code="hold_payer_changed")
    if hold.status != HoldStatus.OPEN or hold.expires_at <= now:
        raise Conflict(f"This hold is {'expired' if hold.status == HoldStatus.OPEN else hold.status}; usage can be "
                       "recorded against an open hold only.", code="hold_not_open")
    return hold


def _decide(
    writer: Writer, indexed: list[tuple[int, Prepared]], actor: Actor, *, for_org: Organization | None = None,
    token: SpendingToken | None = None,
) -> dict[int, BatchItem]:
    """Decide the events (index in the batch, prepared event) on `writer`'s locked
    account, in order, then write what was recorded and save. `for_org`: the
    organization the usage is for, when it is not the account's own; `token`:
    the spending token recording them, whose ceiling is checked and counted here."""
    account, loaded = writer.account, writer.loaded
    # The plan's features, like its prices, are decided on the locked row (the
    # paying account's: a member's own plan when they pay): a downgrade refuses a
    # gated meter from the moment it commits. A replay answers what was
    # recorded, whatever the plan is now.
    features_check_all([p for _index, p in indexed if p.input.idempotency_key not in loaded.existing_events], account)
    writer.live_grants()
    holds = _holds_lock(writer, indexed, for_org)
    # The token's row after the account and hold rows: the order every token write takes.
    spend = token_spend_lock(token, writer.now, holds.get(token.hold_id)) if token is not None else None
    used: dict[int, Hold] = {}
    strict = not account.overage_allowed
    payer = writer.route.payer if writer.route is not None else None
    results: dict[int, BatchItem] = {}
    seen: dict[str, tuple[str, RecordedEvent]] = {}
    replayed: list[BatchItem] = []
    # One entry per member, in the order members first appear: member id ->
    # (entry id, charged events).
    by_member: dict[int | None, tuple[int, list[RecordedEvent]]] = {}
    total = 0
    for index, p in indexed:
        key = p.input.idempotency_key
        item = BatchItem(index, key, "refused")
        results[index] = item
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
        charge = p.priced.charge_micros
        member_id = p.member.pk if p.member is not None else None
        if spend is not None:
            try:
                spend.require(charge)  # revoked, expired or its hold ended since; or past its ceiling
            except TollgateError as error:
                item.error = error
                continue
        hold, taken = None, []
        if p.input.hold_id is not None:
            try:
                hold = _hold_open(holds, p.input.hold_id, writer.now)
            except TollgateError as error:
                item.error = error
                continue
            # The reservation pays first (a child's, then its parents'): from here on
            # the checks see it spent.
            chain = hold_chain(hold, holds)
            taken, rest = hold_take(writer, chain, charge)
            if rest and hold.parent_id is not None:  # a child never spends past its parents
                hold_untake(writer, taken)
                item.error = HoldBudgetExceeded(hold_id=hold.pk, left_micros=charge - rest, required_micros=charge)
                continue
        if charge:
            try:
                # What a hold covered is available again (hold_use), so the whole charge is compared.
                available = account.available_micros - total
                if strict and charge > available:
                    raise InsufficientCredits(
                        balance_micros=account.balance_micros - total, available_micros=available, required_micros=charge,
                        payer=payer,
                    )
                require_affordable(writer, charge, member_id, strict=False)  # the member's cap, the key's limit
            except TollgateError as error:
                item.error = error
                hold_untake(writer, taken)  # refused: the reservations stay as they were
                if isinstance(error, SpendLimitReached):
                    limit_reached_announce(error)  # a batch keeps going and commits: told after that
                continue
            writer.spend(member_id, charge)
            total += charge
            if member_id not in by_member:
                by_member[member_id] = (writer.next_entry_id(), [])
        if hold is not None:
            hold.recorded_micros += charge
            used[hold.pk] = hold
            used.update((h.pk, h) for h, _part in taken)
        if spend is not None:
            spend.spend(charge)
        item.status = "recorded"
        item.event = _event(writer, p, entry_id=by_member[member_id][0] if charge else None,
                            balance_after_micros=account.balance_micros - total, hold=hold)
        if charge:
            by_member[member_id][1].append(item.event)
        seen[key] = (p.fingerprint, item.event)
    recorded = [r for r in results.values() if r.status == "recorded"]
    single = len(recorded) == 1
    # Entry keys share the account's space with its own usage: routed ones name the org.
    prefix = f"usage-for:{for_org.pk}:" if for_org is not None else "usage:"
    suffix = f" for {for_org.name}" if for_org is not None else ""
    for entry_id, charged in by_member.values():
        amount = sum(event.credits_micros for event in charged)
        hold_ids = {event.hold_id for event in charged}
        writer.write(
            EntryKind.USAGE, -amount, writer.take(amount), id=entry_id, member=charged[0].member,
            hold_id=hold_ids.pop() if len(hold_ids) == 1 else None,
            idempotency_key=f"{prefix}{recorded[0].idempotency_key}" if single else f"usage-batch:{charged[0].pk}",
            reason=((_reason(charged[0].quantity, charged[0].meter) if len(charged) == 1
                     else f"{len(charged)} usage events") + suffix)[:500],
        )
    if used:
        Hold.objects.bulk_update(list(used.values()), ["used_micros", "recorded_micros"])
    if spend is not None:
        spend.save()
    if recorded:
        audit = writer.audit if for_org is None else writer.audit_routed
        audit(
            "usage.recorded", actor, events=len(recorded), amount=credits_str(-total),
            **({"spending_token": token.prefix} if token is not None else {}),
            **({"event": recorded[0].event.pk, "idempotency_key": recorded[0].idempotency_key} if len(recorded) == 1 else {}),
            balance_after=credits_str(account.balance_micros),
        )
        writer.save()
    elif writer.expired:
        writer.save()  # the write-off of expired grants stands on its own
    if replayed:
        originals = _replays(account, [r.idempotency_key for r in replayed], for_org)
        for r in replayed:
            r.event = originals[r.idempotency_key]
    return results


def _attribute(prepared: list[Prepared], actor: Actor) -> None:
    prefix = api_key_prefix_of(actor)
    for p in prepared:
        p.api_key_prefix = prefix


def _reason(quantity: Decimal, meter: Meter) -> str:
    """The reason on the entry of one usage event, on both debit paths, in the
    words the history shows: "12,400 AI output tokens"."""
    return usage_phrase(quantity, meter)


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


def _record_one_in_database(org: Organization, p: Prepared, actor: Actor) -> RecordedUsage | None:
    """One event through usage_ledger_debit: lock, check, debit and keep it in one
    statement. None when the Python writer must decide (nothing was written)."""
    now = timezone.now()
    plan = _plan_hint(org.pk)
    priced = price_event(p, plan, now)
    price, mode, per_unit, charge = priced.price, priced.mode, priced.per_unit, priced.charge_micros
    item = p.input
    member_id = p.member.pk if p.member is not None else None
    reason = _reason(item.quantity, price.meter)[:500]
    row = {
        "member_id": member_id, "meter_id": price.meter.pk, "model": item.model, "quantity": item.quantity,
        "credits_per_unit": per_unit, "billing_mode": mode,
        "provider_key_id": p.provider_key.pk if p.provider_key is not None else None,
        "workflow_run_id": item.workflow_run_id, "occurred_at": item.occurred_at, "metadata": item.metadata,
        "idempotency_key": item.idempotency_key, "request_fingerprint": p.fingerprint,
        "api_key_prefix": api_key_prefix_of(actor),
    }
    result = credits.server_debit(
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
    writer = Writer.applied(result, now)
    event = UsageEvent(
        id=result["event_id"], account=writer.account, member=p.member, meter=price.meter, model=item.model,
        quantity=item.quantity, credits_per_unit=per_unit, credits_micros=charge,
        balance_after_micros=result["balance_after"], billing_mode=mode, provider_key=p.provider_key,
        workflow_run_id=item.workflow_run_id, occurred_at=item.occurred_at or now, created_at=now,
        metadata=item.metadata, idempotency_key=item.idempotency_key, request_fingerprint=p.fingerprint,
        ledger_entry_id=result["entry_id"], api_key_prefix=row["api_key_prefix"],
    )
    event._state.adding, event._state.db = False, "default"
    writer.save()
    return RecordedUsage(event)


@limit_refusals_announced()
def usage_record(
    *, org: Organization, event: UsageInput, actor: Actor = None, token: SpendingToken | None = None,
) -> RecordedUsage:
    """Price and check-and-debit one usage event, or refuse (402, 400, 404, 409) and record nothing.

    Like credits_debit, outside a transaction the common case is one statement.
    An API key carrying a monthly limit takes the Python writer instead: the
    one-statement debit (usage_ledger_debit) knows members' caps but not keys'
    limits, which the writer checks and counts (KeySpend) under the same lock.

    `token`: a spending token records it (`actor` is then the key that issued
    it): the event goes on the token's hold, which the writer takes."""
    key_require_unpaused(actor, org)
    if token is not None:
        (event,) = token_inputs(token, [event])
    prepared = None
    # Usage a member pays for takes the Python writer (see usage.services.routing).
    # So does the usage of an org whose members once paid: a retry of an event a
    # member paid for is a replay, which only the writer's path looks for.
    # So does usage charged against a hold, whose row the writer locks and updates.
    if (credits.SERVER_DEBIT and event.hold_id is None and not key_limited(actor) and not routing.members_pay(org)
            and org.members_paid_since is None):
        prepared = prepare(org, [event], actor=actor)
        if prepared[0].error is not None:
            raise prepared[0].error
        # A meter that needs a plan feature is decided by the Python writer,
        # which checks the account's features under its lock; the one-statement
        # debit knows prices and plans, not features.
        recorded = None if meter_gated(event.meter) else _record_one_in_database(org, prepared[0], actor)
        if recorded is not None:
            return recorded
    with transaction.atomic():
        # The fallback reuses the checks above rather than query members and keys again.
        (result,) = _record(org, [event], actor, prepared=prepared, token=token)
        if result.error is not None:
            raise result.error
    recorded = result.event
    if not isinstance(recorded, UsageEvent):
        recorded = UsageEvent.objects.select_related("meter", "member").get(pk=recorded.pk)
    return RecordedUsage(recorded, replayed=result.status == "replayed")


@transaction.atomic
def usage_record_batch(
    *, org: Organization, events: list[UsageInput], actor: Actor = None, token: SpendingToken | None = None,
) -> list[BatchItem]:
    """Up to 1,000 events in one transaction, each decided (and idempotent) on its own, in order.
    A batch from a paused API key is refused whole (402 usage_paused). `token`: as for `usage_record`."""
    key_require_unpaused(actor, org)
    if not events:
        raise InvalidRequest("Send at least one event.", code="invalid_request")
    if len(events) > MAX_BATCH:
        raise InvalidRequest(f"A batch holds at most {MAX_BATCH} events.", code="batch_too_large")
    if token is not None:
        events = token_inputs(token, events)
    return _record(org, events, actor, token=token)


@limit_refusals_announced()
@transaction.atomic
def hold_capture_events(
    *, org: Organization, hold_id: int, events: list[UsageInput], actor: Actor = None
) -> tuple[Hold, list[UsageEvent]]:
    """Capture a hold with the usage events the run was made of: their total is
    debited as `hold_capture` debits an amount (the held part always, the rest
    only if it can be covered, else 402 and nothing kept) and each event is kept,
    linked to the hold and the capture entry. Capturing again with the same
    events returns the first capture; with other events, 409."""
    if not events or len(events) > MAX_BATCH:
        raise InvalidRequest(f"Send 1 to {MAX_BATCH} events.", code="invalid_request")
    key_require_unpaused(actor, org)
    prepared = prepare(org, events, actor=actor)
    _attribute(prepared, actor)
    for p in prepared:
        if p.error is not None:
            raise p.error
    account, hold = hold_lock(org, hold_id)
    for p in prepared:
        p.locked_rates = hold.locked_rates  # a quote's hold: priced as quoted
    if hold.for_org_id is not None:
        # Paid by the member's personal account (member_usage: personal): the events are labelled for the org.
        for p in prepared:
            p.for_org_id = hold.for_org_id
            p.member = p.member or hold.member
    now = timezone.now()
    price_all(prepared, account.plan_code, now)  # the paying account's plan
    if hold.status != "captured":  # capturing again answers the first capture, whatever the plan is now
        features_check_all(prepared, account)
    for p in prepared:
        if p.error is not None:
            raise p.error
    total = sum(p.priced.charge_micros for p in prepared)
    if hold.status != "captured":
        keys = [p.input.idempotency_key for p in prepared]
        if len(set(keys)) != len(keys) or UsageEvent.objects.filter(
            account=account, for_org_id=hold.for_org_id, idempotency_key__in=keys,
        ).exists():
            raise IdempotencyConflict("An idempotency key of these events was already used.")

    def queue(writer: Writer, entry) -> None:
        balance = writer.account.balance_micros + total
        for p in prepared:
            balance -= p.priced.charge_micros
            _event(writer, p, entry_id=entry.pk if entry is not None and p.priced.charge_micros else None,
                   balance_after_micros=balance, hold=hold)

    # Usage recorded against the hold while it was open is part of the run, debited already.
    hold, _entry = hold_capture_locked(
        account, hold, None, on_top_micros=total, actor=actor, events=len(prepared), queue_events=queue,
        reason=f"Captured with {len(prepared)} usage event{'s' if len(prepared) != 1 else ''}",
    )
    return hold, list(hold.usage_events.select_related("meter", "member").order_by("id"))
