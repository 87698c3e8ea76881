"""Holds: credits reserved before a run, captured or released after it."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from accounts.models import OrgAPIKey
from billing_project.errors import Conflict, InvalidRequest, NotFound
from usage.errors import HoldBudgetExceeded, IdempotencyConflict
from usage.models import CreditAccount, EntryKind, Hold, HoldStatus, LedgerEntry
from usage.services import routing
from usage.services.pause import api_key_prefix_of, key_limited, key_require_unpaused
from usage.services.pricing import account_features, feature_require
from usage.services.rates import current_card
from usage.services.limits import limit_refusals_announced
from usage.services.hold_tree import (
    hold_audit,
    hold_chain,
    hold_children_settle,
    hold_give_back,
    hold_take,
    holds_save,
)
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
    parent_hold_id: int | None = None,
    locked_rates: dict | None = None,
    actor: Actor = None,
) -> Hold:
    """Reserve credits before a run. Refused with 402 unless available covers it
    and the member's monthly cap and the API key's monthly limit leave room for
    it, or 402 usage_paused from a paused API key. The hold remembers the key
    that made it: while open it counts against that key's limit.
    `meters` names what the run will record: a meter that needs a feature the
    plan lacks refuses the hold (403 feature_not_in_plan), an unknown one is 400.
    With `parent_hold_id` the hold is carved out of that open hold's reservation
    instead (see `_child_create`). `locked_rates`: a quote's prices (see
    usage.services.quotes)."""
    key_require_unpaused(actor, org)
    require_positive(amount_micros)
    if not timedelta(seconds=1) <= expires_in <= MAX_HOLD_TTL:
        raise InvalidRequest("expires_in must be between 1 second and 24 hours.", code="invalid_expiry")
    card = current_card()
    named = [card.meter(code) for code in dict.fromkeys(meters or ())]
    if parent_hold_id is not None:
        return _child_create(
            org=org, parent_hold_id=parent_hold_id, amount_micros=amount_micros, idempotency_key=idempotency_key,
            member=member, expires_in=expires_in, workflow_run_id=workflow_run_id, metadata=metadata,
            request_fingerprint=request_fingerprint, named=named, actor=actor,
        )
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
        locked_rates=locked_rates,
    )
    account.held_micros += amount_micros
    (writer.audit if payer is None else writer.audit_routed)(
        "hold.created", actor, hold=hold.pk, amount=credits_str(amount_micros),
    )
    writer.save()
    return hold


def _child_create(
    *, org: Organization, parent_hold_id: int, amount_micros: int, idempotency_key: str | None, member,
    expires_in: timedelta, workflow_run_id: str, metadata: dict | None, request_fingerprint: str, named: list,
    actor: Actor,
) -> Hold:
    """Carve a hold out of an open parent's reservation, for a sub-agent's run. It
    reserves nothing more from the balance, so neither available credits nor the
    member's cap or the key's limit change: the parent's `used_micros` grows by
    the amount and the child reserves it. The child is for the parent's member,
    paid from the parent's balance, counted against the parent's key, and expires
    no later than the parent. Refused with 409 when the parent is not open
    (`hold_not_open`), has less left (`parent_hold_insufficient`), sits at
    HOLD_MAX_DEPTH (`hold_depth_exceeded`) or has HOLD_MAX_OPEN_CHILDREN open
    children (`hold_children_exceeded`); another org's parent is 404."""
    account, parent = hold_lock(org, parent_hold_id)
    if idempotency_key:
        existing = Hold.objects.filter(account=account, for_org=parent.for_org_id,
                                       idempotency_key=idempotency_key).first()
        if existing is not None:
            if existing.amount_micros != amount_micros or existing.parent_id != parent.pk or (
                request_fingerprint and existing.request_fingerprint
                and existing.request_fingerprint != request_fingerprint
            ):
                raise IdempotencyConflict()
            return existing
    if member is not None and member.pk != parent.member_id:
        raise Conflict("A child hold is for the member its parent is for.", code="hold_member_mismatch")
    gated = [meter for meter in named if meter.required_feature]
    if gated:
        features = account_features(account)
        for meter in gated:
            feature_require(meter, features, account.plan_code)
    now = timezone.now()
    if parent.status != HoldStatus.OPEN or parent.expires_at <= now:
        raise Conflict("A child hold can be carved out of an open hold only.", code="hold_not_open")
    if parent.depth + 1 > settings.HOLD_MAX_DEPTH:
        raise Conflict(f"Holds nest at most {settings.HOLD_MAX_DEPTH} deep below the first.",
                       code="hold_depth_exceeded", max_depth=settings.HOLD_MAX_DEPTH)
    if Hold.objects.filter(parent=parent, status=HoldStatus.OPEN).count() >= settings.HOLD_MAX_OPEN_CHILDREN:
        raise Conflict(f"A hold may have at most {settings.HOLD_MAX_OPEN_CHILDREN} open children.",
                       code="hold_children_exceeded", max_open_children=settings.HOLD_MAX_OPEN_CHILDREN)
    if amount_micros > parent.left_micros:
        raise Conflict(
            f"Hold {parent.pk} has {credits_str(parent.left_micros)} credits left, less than "
            f"{credits_str(amount_micros)}.", code="parent_hold_insufficient",
            left=credits_str(parent.left_micros), required=credits_str(amount_micros),
        )
    writer = Writer(account, now)
    writer.hold_use(parent, amount_micros)  # the parent's reservation shrinks ...
    hold = Hold.objects.create(
        account=account, member=parent.member, amount_micros=amount_micros,
        expires_at=min(now + expires_in, parent.expires_at), idempotency_key=idempotency_key,
        workflow_run_id=workflow_run_id or parent.workflow_run_id, metadata=metadata or {},
        request_fingerprint=request_fingerprint, for_org_id=parent.for_org_id, api_key_prefix=parent.api_key_prefix,
        parent=parent, depth=parent.depth + 1, locked_rates=parent.locked_rates,  # a quote's child: its prices
    )
    account.held_micros += amount_micros  # ... by what the child reserves: held credits do not move
    parent.save(update_fields=["used_micros"])
    hold_audit(writer, hold, "hold.created", actor, hold=hold.pk, parent=parent.pk, amount=credits_str(amount_micros))
    writer.save()
    return hold


def hold_lock(org: Organization, hold_id: int) -> tuple[CreditAccount, Hold]:
    """Lock one of `org`'s holds and the account it reserves: the org's own, or
    a member's personal account for a hold made for `org` (member_usage:
    personal). Any other hold, including one a member's personal organization
    holds for itself or one held for another org, is 404."""
    found = Hold.objects.of_org(org).filter(pk=hold_id).values_list(
        "account__org_id", "for_org_id", "api_key_prefix").first()
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
    on_top_micros: int | None = None,
) -> tuple[Hold, LedgerEntry | None]:
    """Capture a hold whose account and row the caller has locked. `queue_events(writer,
    entry)` may queue the usage events the capture is made of (see usage.services.events);
    `on_top_micros` (with no amount): capture what was recorded plus that much.

    Its open children are settled first (`_children_settle`), so what they recorded
    is part of what this hold recorded. A child hold's capture takes what it owes
    from its own reservation, then its parents' (`hold_take`), never from the
    balance: past them it is refused (402 hold_budget_exceeded)."""
    key = Hold.capture_key(hold.pk)
    if on_top_micros is not None and hold.status == HoldStatus.CAPTURED:
        amount_micros = hold.recorded_micros + on_top_micros  # what was recorded is frozen once it closed
    if hold.status == HoldStatus.CAPTURED:
        if amount_micros is not None and hold.captured_micros != amount_micros:
            raise Conflict("This hold was already captured with a different amount.", code="hold_already_captured")
        return hold, existing_entry(account, key)
    if hold.status == HoldStatus.RELEASED:
        raise Conflict("This hold was released; record the usage without it.", code="hold_released")
    if hold.parent_id is not None and hold.status != HoldStatus.OPEN:
        raise Conflict("This child hold expired and its reservation went back to its parent; capture the parent.",
                       code="hold_not_open")
    writer = Writer(account, timezone.now())
    member = member or hold.member
    member_id = member.pk if member is not None else None
    routed = hold.for_org_id is not None
    writer.load(entries=1, events=events, member_ids=[member_id] if member_id is not None and not routed else None,
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
    touched = [hold]
    if hold.status == HoldStatus.OPEN:
        hold_children_settle(writer, hold, actor, touched)
    recorded = hold.recorded_micros  # its children's included, now that they are settled
    if on_top_micros is not None:
        amount_micros = recorded + on_top_micros
    elif amount_micros is None:
        amount_micros = recorded
    if amount_micros < recorded:
        raise Conflict(
            f"{credits_str(recorded)} credits were recorded against this hold already; capture at least that.",
            code="capture_below_recorded",
        )
    owed = amount_micros - recorded  # what is not debited yet
    if hold.parent_id is not None:
        chain = hold_chain(hold)
        _taken, rest = hold_take(writer, chain, owed)
        if rest:
            raise HoldBudgetExceeded(hold_id=hold.pk, left_micros=owed - rest, required_micros=owed)
        hold_give_back(writer, hold, chain[1], amount_micros)
        touched.append(chain[1])
        touched += chain[2:]
    else:
        reserved = hold.left_micros  # even expired, what it reserved is capturable (see hold_capture)
        if hold.status == HoldStatus.OPEN:
            writer.release(hold)
        beyond = owed - reserved
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
    holds_save(touched)
    data = {"hold": hold.pk, "held": credits_str(hold.amount_micros), "captured": credits_str(amount_micros),
            **({"recorded": credits_str(recorded)} if recorded else {})}
    if routed:
        writer.audit_routed("hold.captured", actor, **data, balance_after=credits_str(account.balance_micros))
    else:
        writer.audit("hold.captured", actor, **data, balance_after=credits_str(account.balance_micros))
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
    """Free an open hold's reservation, its open children settled first. Through the
    writer, like every change of the account's figures, so it is announced as one
    (available credits grow). A child's reservation goes back to its parent."""
    writer = Writer(account, timezone.now())
    touched = [hold]
    hold_children_settle(writer, hold, actor, touched)
    freed = hold.left_micros
    parent = hold_chain(hold)[1] if hold.parent_id is not None else None
    if parent is not None and parent.status == HoldStatus.OPEN:
        hold_give_back(writer, hold, parent, hold.recorded_micros)
        touched.append(parent)
    else:
        writer.release(hold)
        if status == HoldStatus.EXPIRED:
            writer.hold_expired(hold, freed)
    hold.status = status
    hold.closed_at = closed_at
    holds_save(touched)
    hold_audit(writer, hold, action, actor, hold=hold.pk, amount=credits_str(freed))
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
