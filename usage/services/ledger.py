"""Every change of a credit balance goes through this module.

Each public function is one short transaction that locks the organization's
credit account row (`SELECT ... FOR UPDATE`), reads its grants, writes ledger
entries and their allocations, updates the cached columns and writes an audit
row. Because every writer takes the same row lock first, no interleaving of
requests can overdraw an account or apply one idempotency key twice; the
unique constraints on idempotency keys are the backstop.

Idempotency keys share one space per account, so callers namespace them:
`usage:<client key>`, `hold:<id>:capture`, `stripe:<object id>:...`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from datetime import timezone as dt_timezone
from typing import TYPE_CHECKING, Any

from django.db import IntegrityError, transaction
from django.db.models import F, Sum
from django.db.models.functions import Coalesce
from django.utils import timezone

from billing_project.errors import Conflict, InvalidRequest, NotFound
from orgs.models import AuditEvent
from orgs.services import audit_event_build, audit_fields, audit_record
from usage.errors import IdempotencyConflict, InsufficientCredits, SpendLimitReached
from usage.models import (
    DEFAULT_PRIORITY,
    TRANSFERABLE_SOURCES,
    CreditAccount,
    EntryKind,
    Grant,
    GrantSource,
    Hold,
    HoldStatus,
    LedgerEntry,
    Transfer,
)
from usage.services import _store
from usage.units import credits_str

if TYPE_CHECKING:
    from orgs.models import Organization
    from orgs.services import Actor

DEFAULT_HOLD_TTL = timedelta(minutes=15)
MAX_HOLD_TTL = timedelta(hours=24)


# --- the account lock and the one writer -------------------------------------


def account_open(*, org: Organization) -> CreditAccount:
    """The org's credit account, created on first need."""
    account, _ = CreditAccount.objects.get_or_create(org=org)
    return account


@transaction.atomic
def account_set_plan(*, org: Organization, plan_code: str, overage_allowed: bool, actor: Actor = None) -> CreditAccount:
    """Billing tells the ledger which plan the org is on (rate-card overrides, overage)."""
    account = _lock(org.pk)
    if (account.plan_code, account.overage_allowed) != (plan_code, overage_allowed):
        old = account.plan_code
        account.plan_code = plan_code
        account.overage_allowed = overage_allowed
        account.save(update_fields=["plan_code", "overage_allowed", "updated_at"])
        _audit(org.pk, "credits.plan_set", actor, plan=plan_code, previous=old, overage_allowed=overage_allowed)
    return account


def _lock(org_id: int) -> CreditAccount:
    """Lock the org's account row for the rest of the transaction."""
    account = _store.lock_account(org_id)
    if account is None:
        try:
            with transaction.atomic():
                CreditAccount.objects.create(org_id=org_id)
        except IntegrityError:
            pass  # created concurrently; lock that one
        account = _store.lock_account(org_id)
    return account


def _lock_many(org_ids: list[int]) -> dict[int, CreditAccount]:
    # Always in the same order, so two transfers in opposite directions cannot deadlock.
    return {org_id: _lock(org_id) for org_id in sorted(set(org_ids))}


def month_start(when: datetime) -> date:
    """The calendar month (UTC) a member's spend counts in."""
    return when.astimezone(dt_timezone.utc).date().replace(day=1)


class _Writer:
    """Writes entries for one locked account inside one transaction, keeping the
    cached balance, debt and grant remainders in step with what it writes.

    Nothing reaches the database until `save()`, which writes every entry,
    allocation, usage event, audit row, grant and spend change and the account's
    cached columns in one statement (see `_store`). `save()` is the one exit
    of every ledger write: whatever must follow any balance change hooks in there.
    """

    def __init__(self, account: CreditAccount, now: datetime) -> None:
        self.account = account
        self.now = now
        # As locked, before this writer changes anything: _after_write compares.
        self.balance_before = account.balance_micros
        self.debt_before = account.debt_micros
        self.held_before = account.held_micros
        self.loaded: _store.Loaded | None = None
        self._grants: list[Grant] | None = None
        self.expired: list[LedgerEntry] = []
        self._entry_ids: list[int] = []
        self._entries: list[LedgerEntry] = []
        self._allocations: list[tuple[int, int, int]] = []
        self._touched: dict[int, Grant] = {}
        self._events: list[str] = []
        self._audits: list[AuditEvent] = []
        self._spend: dict[tuple[int, date], int] = {}
        self.server_applied = False

    def load(self, *, entries: int = 1, **kwargs: Any) -> _store.Loaded:
        """Read grants, replays, caps and fresh ids in one statement (see `_store.load`)."""
        self.loaded = _store.load(self.account, now=self.now, entries=entries, **kwargs)
        self._entry_ids = self.loaded.entry_ids
        return self.loaded

    def live_grants(self) -> list[Grant]:
        """Grants with credits left, in burn order; expired ones are written off first.

        Expired grants are never spendable: whatever the expiry task has not
        yet written off is written off here, before anything is spent.
        """
        if self._grants is None:
            if self.loaded is None:
                self.load(entries=0)
            grants = self.loaded.grants
            for grant in grants:
                if grant.expires_at is not None and grant.expires_at <= self.now:
                    entry = self.write(
                        EntryKind.EXPIRY, -grant.remaining_micros, [(grant, -grant.remaining_micros)],
                        reason="Expired", idempotency_key=f"expiry:{grant.pk}",
                    )
                    self.expired.append(entry)
                    self.audit("credits.expired", "system", grant=grant.pk, amount=credits_str(entry.amount_micros))
            self._grants = [g for g in grants if g.remaining_micros > 0]
        return self._grants

    def take(self, amount_micros: int, grants: list[Grant] | None = None) -> list[tuple[Grant, int]]:
        """Allocate a debit of `amount_micros` (> 0) across grants in burn order.
        Returns negative allocations; any part no grant covers is left to debt."""
        allocations = []
        left = amount_micros
        for grant in self.live_grants() if grants is None else grants:
            if left == 0:
                break
            part = min(grant.remaining_micros, left)
            if part:
                allocations.append((grant, -part))
                left -= part
        return allocations

    def write(self, kind: str, amount_micros: int, allocations: list[tuple[Grant, int]], **fields: Any) -> LedgerEntry:
        account = self.account
        backed = sum(part for _grant, part in allocations)
        account.balance_micros += amount_micros
        # What no grant backs is debt (a debit past zero) or pays debt off (a
        # credit while in debt): balance == sum(remaining) - debt always.
        account.debt_micros -= amount_micros - backed
        fields.setdefault("grant", allocations[0][0] if len(allocations) == 1 else None)
        fields.setdefault("metadata", {})
        fields.setdefault("id", None)
        entry = LedgerEntry(
            id=fields.pop("id") or self.next_entry_id(),
            account=account,
            kind=kind,
            amount_micros=amount_micros,
            balance_after_micros=account.balance_micros,
            created_at=self.now,
            **fields,
        )
        self._entries.append(entry)
        for grant, part in allocations:
            grant.remaining_micros += part
            self._touched[grant.pk] = grant
            self._allocations.append((entry.pk, grant.pk, part))
        return entry

    def event(self, row_json: str) -> None:
        """Queue a usage event's row, as a JSON object (see usage.services.events._event)."""
        self._events.append(row_json)

    def next_entry_id(self) -> int:
        """Draw the id of an entry about to be written (to reference it before `write`)."""
        if not self._entry_ids:
            self._entry_ids = _store.reserve_entry_ids(4)
        return self._entry_ids.pop(0)

    def spend(self, member_id: int | None, amount_micros: int) -> None:
        """Count a debit towards a member's month (see MemberSpend)."""
        if member_id is not None and amount_micros:
            key = (member_id, month_start(self.now))
            self._spend[key] = self._spend.get(key, 0) + amount_micros

    def pending_spend(self, member_id: int) -> int:
        return self._spend.get((member_id, month_start(self.now)), 0)

    def audit(self, action: str, actor: Actor, **data: Any) -> None:
        """Queue an audit row; it is written by `save()`, in the same transaction."""
        self._audits.append(audit_event_build(org=self.account.org_id, action=action, actor=actor, data=data))

    @classmethod
    def applied(cls, result: dict, now: datetime) -> _Writer:
        """A writer for a write usage_ledger_debit already made, so that it too
        leaves through `save()`."""
        account = _store.account_from(result["account"])
        writer = cls(account, now)  # records the balance and debt as locked, before the debit
        account.balance_micros = result["balance_after"]
        account.debt_micros += result["debt_added"]
        writer.server_applied = True
        return writer

    def save(self) -> None:
        account = self.account
        if self.server_applied and not (self._entries or self._events or self._audits or self._touched):
            pass  # usage_ledger_debit wrote it all
        else:
            self._flush()
        account.updated_at = self.now
        for entry in self._entries:
            entry._state.adding = False
            entry._state.db = "default"
        self._entries, self._allocations, self._touched, self._events, self._audits, self._spend = [], [], {}, [], [], {}
        # Every ledger write ends here, including those usage_ledger_debit made
        # in the database (through _Writer.applied), so what must follow a
        # balance change hangs here. Outside a transaction on_commit runs at
        # once, which is right: the single-statement debit has already committed.
        _after_write(account, self.balance_before, self.debt_before, self.held_before)

    def _flush(self) -> None:
        account = self.account
        _store.flush(
            account=account,
            now=self.now,
            entries=[
                {
                    "id": e.pk, "account_id": account.pk, "kind": e.kind, "amount_micros": e.amount_micros,
                    "balance_after_micros": e.balance_after_micros, "grant_id": e.grant_id, "member_id": e.member_id,
                    "hold_id": e.hold_id, "transfer_id": e.transfer_id, "staff_user_id": e.staff_user_id,
                    "stripe_object_id": e.stripe_object_id, "reason": e.reason, "idempotency_key": e.idempotency_key,
                    "metadata": e.metadata, "created_at": e.created_at,
                }
                for e in self._entries
            ],
            allocations=[{"entry_id": e, "grant_id": g, "amount_micros": m} for e, g, m in self._allocations],
            grants=[{"id": g.pk, "remaining_micros": g.remaining_micros} for g in self._touched.values()],
            events=self._events,
            audits=[
                {
                    "org_id": a.org_id, "action": a.action, "actor_user_id": a.actor_user_id,
                    "actor_api_key": a.actor_api_key, "actor_label": a.actor_label, "source": a.source,
                    "request_id": a.request_id, "ip": a.ip, "data": a.data, "created_at": self.now,
                }
                for a in self._audits
            ],
            spend=[
                {"account_id": account.pk, "member_id": member_id, "month": month, "spent_micros": amount}
                for (member_id, month), amount in self._spend.items()
            ],
        )


def _lock_and_load(org_id: int, now: datetime, **load: Any) -> _Writer:
    """Lock the org's account and read what the write decides on, in one round trip:
    the writer comes back loaded (see `_store.lock_and_load`)."""
    locked = _store.lock_and_load(org_id, now=now, **load)
    if locked is None:
        _lock(org_id)  # creates the account, then locks it
        locked = _store.lock_and_load(org_id, now=now, **load)
    account, loaded = locked
    writer = _Writer(account, now)
    writer.loaded = loaded
    writer._entry_ids = loaded.entry_ids
    return writer


def _existing(account: CreditAccount, key: str | None) -> LedgerEntry | None:
    if not key:
        return None
    return LedgerEntry.objects.filter(account=account, idempotency_key=key).first()


def _positive(amount_micros: int, what: str = "amount") -> int:
    if not isinstance(amount_micros, int) or isinstance(amount_micros, bool):
        raise InvalidRequest(f"The {what} must be a whole number of micro-credits.", code="invalid_amount")
    if amount_micros <= 0:
        raise InvalidRequest(f"The {what} must be greater than zero.", code="invalid_amount")
    return amount_micros


def _non_negative(value: int, message: str, code: str) -> int:
    """A whole number of micro-credits, zero or more, or InvalidRequest(message, code)."""
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise InvalidRequest(message, code=code)
    return value


def _audit(org_id: int, action: str, actor: Actor, **data: Any) -> None:
    audit_record(org=org_id, action=action, actor=actor, data=data)


# --- the strict debit in one statement ------------------------------------------

# The common strict debit runs inside PostgreSQL (usage_ledger_debit in _store):
# one round trip holds the account lock for one statement and COMMIT. Tests
# turn this off to run the same cases through the Python writer.
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
    result = _store.debit(org_id, amount_micros, **args)
    if result["status"] == "no_account":
        _lock(org_id)  # creates it
        result = _store.debit(org_id, amount_micros, **args)
    status = result["status"]
    if status == "insufficient_credits":
        account = result["account"]
        available = account["balance_micros"] - account["held_micros"]
        raise InsufficientCredits(balance_micros=account["balance_micros"], available_micros=available,
                                  required_micros=amount_micros)
    if status == "spend_limit_reached":
        raise SpendLimitReached(limit_micros=result["limit"], spent_micros=result["spent"], required_micros=amount_micros)
    return result


# --- credits in -------------------------------------------------------------


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
    _positive(amount_micros)
    if source not in GrantSource.values:
        raise InvalidRequest(f"Unknown grant source “{source}”.", code="invalid_source")
    now = timezone.now()
    if expires_at is not None and expires_at <= now:
        raise InvalidRequest("A grant cannot expire in the past.", code="invalid_expiry")
    account = _lock(org.pk)
    existing = _existing(account, idempotency_key)
    if existing is not None:
        return existing
    writer = _Writer(account, now)
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
    _audit(
        org.pk, "credits.granted", actor, amount=credits_str(amount_micros), source=source, grant=grant.pk,
        entry=entry.pk, balance_after=credits_str(account.balance_micros),
        expires_at=expires_at.isoformat() if expires_at else None,
    )
    return entry


# --- credits out --------------------------------------------------------------


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
    _positive(amount_micros)
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
            writer = _Writer.applied(result, now)
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
    writer = _lock_and_load(
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


def require_affordable(writer: _Writer, amount_micros: int, member_id: int | None, *, strict: bool | None = None) -> None:
    """Refuse with 402 what the account or the member's monthly cap cannot cover.

    `strict` defaults to the plan: accounts allowed overage may go past zero
    (into debt); holds pass strict=True, since a negative balance blocks new work.
    """
    account = writer.account
    if strict is None:
        strict = not account.overage_allowed
    if strict and amount_micros > account.available_micros:
        raise InsufficientCredits(
            balance_micros=account.balance_micros, available_micros=account.available_micros,
            required_micros=amount_micros,
        )
    cap = writer.loaded.members.get(member_id) if member_id is not None and writer.loaded else None
    if cap is not None:
        committed = cap["spent"] + cap["held"] + writer.pending_spend(member_id)
        if committed + amount_micros > cap["limit"]:
            raise SpendLimitReached(limit_micros=cap["limit"], spent_micros=committed, required_micros=amount_micros)


# --- holds ----------------------------------------------------------------


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
    actor: Actor = None,
) -> Hold:
    """Reserve credits before a run. Refused with 402 unless available covers it
    and the member's monthly cap leaves room for it."""
    _positive(amount_micros)
    if not timedelta(seconds=1) <= expires_in <= MAX_HOLD_TTL:
        raise InvalidRequest("expires_in must be between 1 second and 24 hours.", code="invalid_expiry")
    account = _lock(org.pk)
    if idempotency_key:
        existing = Hold.objects.filter(account=account, idempotency_key=idempotency_key).first()
        if existing is not None:
            if existing.amount_micros != amount_micros or (
                request_fingerprint and existing.request_fingerprint
                and existing.request_fingerprint != request_fingerprint
            ):
                raise IdempotencyConflict()
            return existing
    now = timezone.now()
    member_id = member.pk if member is not None else None
    writer = _Writer(account, now)
    writer.load(entries=0, member_ids=[member_id] if member_id else None, month=month_start(now))
    writer.live_grants()
    # Holds are never covered by overage: a negative balance blocks new work until paid.
    require_affordable(writer, amount_micros, member_id, strict=True)
    hold = Hold.objects.create(
        account=account, member=member, amount_micros=amount_micros, expires_at=now + expires_in,
        idempotency_key=idempotency_key, workflow_run_id=workflow_run_id, metadata=metadata or {},
        request_fingerprint=request_fingerprint,
    )
    account.held_micros += amount_micros
    writer.audit("hold.created", actor, hold=hold.pk, amount=credits_str(amount_micros))
    writer.save()
    return hold


def _locked_hold(org: Organization, hold_id: int) -> tuple[CreditAccount, Hold]:
    account = _lock(org.pk)
    hold = Hold.objects.select_for_update().filter(pk=hold_id, account=account).first()
    if hold is None:
        raise NotFound("No such hold.", code="hold_not_found")
    return account, hold


@transaction.atomic
def hold_capture(
    *,
    org: Organization,
    hold_id: int,
    amount_micros: int,
    member=None,
    reason: str = "",
    metadata: dict | None = None,
    actor: Actor = None,
) -> tuple[Hold, LedgerEntry | None]:
    """Debit the real usage of a held run and free the reservation.

    Never refused for lack of credits: the hold gated the work. What exceeds
    the balance leaves it negative (debt), which blocks new holds until paid.
    Capturing twice returns the first capture; capturing a released hold is a
    conflict. A hold that expired before its capture still records the usage:
    the work was done.
    """
    _non_negative(amount_micros, "The captured amount must be zero or more micro-credits.", "invalid_amount")
    account, hold = _locked_hold(org, hold_id)
    return capture_locked(account, hold, amount_micros, member=member, reason=reason, metadata=metadata, actor=actor)


def capture_locked(
    account: CreditAccount, hold: Hold, amount_micros: int, *, member=None, reason: str = "",
    metadata: dict | None = None, actor: Actor = None, events: int = 0, queue_events=None,
) -> tuple[Hold, LedgerEntry | None]:
    """Capture a hold whose account and row the caller has locked. `queue_events(writer,
    entry)` may queue the usage events the capture is made of (see usage.services.events)."""
    key = f"hold:{hold.pk}:capture"
    if hold.status == HoldStatus.CAPTURED:
        if hold.captured_micros != amount_micros:
            raise Conflict("This hold was already captured with a different amount.", code="hold_already_captured")
        return hold, _existing(account, key)
    if hold.status == HoldStatus.RELEASED:
        raise Conflict("This hold was released; record the usage without it.", code="hold_released")
    writer = _Writer(account, timezone.now())
    writer.load(entries=1 if amount_micros else 0, events=events)
    if hold.status == HoldStatus.OPEN:
        account.held_micros -= hold.amount_micros
    entry = None
    member = member or hold.member
    if amount_micros:
        entry = writer.write(
            EntryKind.USAGE, -amount_micros, writer.take(amount_micros), member=member, hold=hold,
            reason=reason, idempotency_key=key, metadata=metadata or {},
        )
        writer.spend(member.pk if member is not None else None, amount_micros)
    if queue_events is not None:
        queue_events(writer, entry)
    hold.status = HoldStatus.CAPTURED
    hold.captured_micros = amount_micros
    hold.closed_at = writer.now
    hold.save(update_fields=["status", "captured_micros", "closed_at"])
    writer.audit(
        "hold.captured", actor, hold=hold.pk, held=credits_str(hold.amount_micros),
        captured=credits_str(amount_micros), balance_after=credits_str(account.balance_micros),
    )
    writer.save()
    return hold, entry


def _close_hold(account: CreditAccount, hold: Hold, status: str, now: datetime) -> None:
    account.held_micros -= hold.amount_micros
    account.save(update_fields=["held_micros", "updated_at"])
    hold.status = status
    hold.closed_at = now
    hold.save(update_fields=["status", "closed_at"])


@transaction.atomic
def hold_release(*, org: Organization, hold_id: int, actor: Actor = None) -> Hold:
    """Free a reservation without charging. Releasing twice is harmless."""
    account, hold = _locked_hold(org, hold_id)
    if hold.status == HoldStatus.CAPTURED:
        raise Conflict("This hold was already captured.", code="hold_already_captured")
    if hold.status == HoldStatus.OPEN:
        _close_hold(account, hold, HoldStatus.RELEASED, timezone.now())
        _audit(org.pk, "hold.released", actor, hold=hold.pk, amount=credits_str(hold.amount_micros))
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
            account = _lock(org_id)
            hold = Hold.objects.select_for_update().get(pk=hold_id)
            if hold.status != HoldStatus.OPEN:
                continue  # captured or released while we were getting here
            _close_hold(account, hold, HoldStatus.EXPIRED, now)
            _audit(org_id, "hold.expired", "task:holds_expire", hold=hold.pk, amount=credits_str(hold.amount_micros))
            expired += 1
    return expired


# --- expiry ---------------------------------------------------------------


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
            writer = _Writer(_lock(org_id), now)
            writer.live_grants()
            if writer.expired:  # else another write got to them after the query above
                writer.save()
                written += len(writer.expired)
    return written


@transaction.atomic
def grant_expire_now(*, grant: Grant, reason: str, actor: Actor = None) -> LedgerEntry | None:
    """End a grant early (the previous period's plan allowance when a new one starts)."""
    account = _lock(grant.account.org_id)
    grant = Grant.objects.get(pk=grant.pk)
    if grant.remaining_micros == 0:
        return None
    writer = _Writer(account, timezone.now())
    entry = writer.write(
        EntryKind.EXPIRY, -grant.remaining_micros, [(grant, -grant.remaining_micros)], reason=reason,
        idempotency_key=f"expiry:{grant.pk}",
    )
    writer.save()
    _audit(account.org_id, "credits.expired", actor, grant=grant.pk, amount=credits_str(entry.amount_micros), reason=reason)
    return entry


# --- transfers ------------------------------------------------------------


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
    _positive(amount_micros)
    if from_org.pk == to_org.pk:
        raise InvalidRequest("Credits cannot be sent to the same organization.", code="transfer_to_self")
    note = (note or "").strip()[:280]
    accounts = _lock_many([from_org.pk, to_org.pk])
    sender = accounts[from_org.pk]
    existing = Transfer.objects.filter(from_account=sender, idempotency_key=idempotency_key).first()
    if existing is not None:
        if existing.amount_micros != amount_micros or existing.to_account.org_id != to_org.pk:
            raise IdempotencyConflict()
        return existing
    now = timezone.now()
    writer = _Writer(sender, now)
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
    _audit(from_org.pk, "credits.transfer_sent", actor, transfer=transfer.pk, to_org=to_org.slug,
           amount=credits_str(amount_micros), note=note)
    return transfer


# --- refunds and disputes ---------------------------------------------------


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
    _positive(amount_micros)
    account = _lock(grant.account.org_id)
    existing = _existing(account, idempotency_key)
    if existing is not None:
        clawed = -existing.amount_micros
        return Clawback(existing, clawed, int(existing.metadata.get("shortfall_micros", 0)))
    grant = Grant.objects.get(pk=grant.pk)
    clawed = min(amount_micros, grant.remaining_micros)
    shortfall = amount_micros - clawed
    entry = None
    if clawed:
        writer = _Writer(account, timezone.now())
        entry = writer.write(
            EntryKind.CLAWBACK, -clawed, [(grant, -clawed)], reason=reason or "Refunded",
            stripe_object_id=stripe_object_id, idempotency_key=idempotency_key,
            metadata={"requested_micros": amount_micros, "shortfall_micros": shortfall},
        )
        writer.save()
    _audit(
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
    _positive(amount_micros)
    account = _lock(grant.account.org_id)
    existing = _existing(account, idempotency_key)
    if existing is not None:
        return existing
    grant = Grant.objects.get(pk=grant.pk)
    frozen = min(amount_micros, grant.remaining_micros)
    if not frozen:
        return None
    writer = _Writer(account, timezone.now())
    entry = writer.write(
        EntryKind.FREEZE, -frozen, [(grant, -frozen)], reason=reason or "Payment disputed",
        stripe_object_id=stripe_object_id, idempotency_key=idempotency_key,
    )
    grant.frozen_micros += frozen
    grant.save(update_fields=["frozen_micros"])
    writer.save()
    _audit(account.org_id, "credits.frozen", actor, grant=grant.pk, amount=credits_str(frozen), stripe_object_id=stripe_object_id)
    return entry


@transaction.atomic
def credits_unfreeze(
    *, grant: Grant, idempotency_key: str, stripe_object_id: str = "", reason: str = "", actor: Actor = None
) -> LedgerEntry | None:
    """Give back what a dispute froze (the dispute was won)."""
    account = _lock(grant.account.org_id)
    existing = _existing(account, idempotency_key)
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
    writer = _Writer(account, timezone.now())
    entry = writer.write(
        EntryKind.UNFREEZE, amount, [(grant, amount)], reason=reason or "Dispute resolved in your favour",
        stripe_object_id=stripe_object_id, idempotency_key=idempotency_key,
    )
    grant.frozen_micros = 0
    grant.save(update_fields=["frozen_micros"])
    writer.save()
    _audit(account.org_id, "credits.unfrozen", actor, grant=grant.pk, amount=credits_str(amount), stripe_object_id=stripe_object_id)
    return entry


# --- staff adjustments ----------------------------------------------------


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
    _positive(-amount_micros)
    account = _lock(org.pk)
    existing = _existing(account, idempotency_key)
    if existing is not None:
        return existing
    writer = _Writer(account, timezone.now())
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
    _audit(org.pk, "credits.adjusted", staff_user, amount=credits_str(amount_micros), reason=reason, entry=entry.pk)
    return entry


# --- reconciliation ---------------------------------------------------------


@dataclass(frozen=True)
class Mismatch:
    org_id: int
    org_slug: str
    what: str
    cached_micros: int
    actual_micros: int


def ledger_reconcile(*, org_ids: list[int] | None = None) -> list[Mismatch]:
    """Prove every cached number equals what the append-only rows add up to."""
    accounts = CreditAccount.objects.select_related("org").order_by("pk")
    if org_ids is not None:
        accounts = accounts.filter(org_id__in=org_ids)
    account_ids = accounts.values("pk")

    def sums(queryset, field: str) -> dict[int, int]:
        rows = queryset.filter(account__in=account_ids).values("account").annotate(total=Sum(field))
        return {row["account"]: row["total"] for row in rows}

    entry_sums = sums(LedgerEntry.objects, "amount_micros")
    hold_sums = sums(Hold.objects.filter(status=HoldStatus.OPEN), "amount_micros")
    remaining_sums = sums(Grant.objects, "remaining_micros")
    mismatches = []
    for account in accounts.iterator():
        checks = [
            ("balance", account.balance_micros, entry_sums.get(account.pk, 0)),
            ("held", account.held_micros, hold_sums.get(account.pk, 0)),
            ("debt", account.debt_micros, remaining_sums.get(account.pk, 0) - account.balance_micros),
        ]
        mismatches += [
            Mismatch(account.org_id, account.org.slug, what, cached, actual)
            for what, cached, actual in checks
            if cached != actual
        ]
    drifted = (
        Grant.objects.filter(account__in=account_ids)
        .annotate(allocated=Coalesce(Sum("allocations__amount_micros"), 0))
        .exclude(allocated=F("remaining_micros"))
        .select_related("account__org")
    )
    for grant in drifted:
        org = grant.account.org
        mismatches.append(Mismatch(org.pk, org.slug, f"grant {grant.pk} remaining", grant.remaining_micros, grant.allocated))
    # An entry that debits usage events (a batch, a capture) debits exactly their charges.
    unmatched = (
        LedgerEntry.objects.filter(account__in=account_ids, usage_events__isnull=False)
        .annotate(charged=Sum("usage_events__credits_micros"))
        .exclude(amount_micros=-F("charged"))
        .select_related("account__org")
    )
    for entry in unmatched:
        org = entry.account.org
        mismatches.append(Mismatch(org.pk, org.slug, f"entry {entry.pk} vs its usage events", -entry.amount_micros, entry.charged))
    return mismatches


# --- what billing hangs on the ledger: auto top-up and overage triggers -------


def account_set_auto_topup_threshold(*, org: Organization, threshold_micros: int | None) -> None:
    """Billing's auto top-up settings keep this; None turns the trigger off."""
    CreditAccount.objects.filter(pk=account_open(org=org).pk).update(auto_topup_threshold_micros=threshold_micros)


def account_set_low_balance_threshold(*, org: Organization, threshold_micros: int | None) -> None:
    """Billing's alert preferences keep this; None falls back to LOW_BALANCE_CREDITS."""
    if threshold_micros is not None:
        _non_negative(threshold_micros, "The low-balance threshold must be zero or more credits.", "invalid_threshold")
    CreditAccount.objects.filter(pk=account_open(org=org).pk).update(low_balance_threshold_micros=threshold_micros)


def _after_write(account: CreditAccount, balance_before: int, debt_before: int, held_before: int) -> None:
    """Once the transaction commits, hand billing what this write started: a
    balance that fell below the auto top-up threshold, debt that grew on an
    account whose plan bills overage, or available credits that fell below the
    low-balance line or to nothing (alerts). Billing's tasks re-check under
    their own locks, so a trigger that is stale by then does nothing."""
    threshold = account.auto_topup_threshold_micros
    crossed = threshold is not None and account.balance_micros < threshold <= balance_before
    debt_grew = account.overage_allowed and account.debt_micros > debt_before
    # Alerts watch what can be spent: the balance less holds.
    from usage.selectors import low_balance_micros

    available_before = balance_before - held_before
    available = account.balance_micros - account.held_micros
    low_line = low_balance_micros(account.low_balance_threshold_micros)
    alert = (available < low_line <= available_before) or (available <= 0 < available_before)
    if not (crossed or debt_grew or alert):
        return
    # Imported here: billing builds on the ledger, not the other way round.
    from billing import tasks as billing_tasks

    org_id = account.org_id
    if crossed:
        transaction.on_commit(lambda: billing_tasks.auto_topup_check.delay(org_id))
    if debt_grew:
        transaction.on_commit(lambda: billing_tasks.overage_report.delay(org_id))
    if alert:
        transaction.on_commit(lambda: billing_tasks.alerts_check.delay(org_id))
