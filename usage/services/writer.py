"""The account lock and the one writer every change of a balance goes through.

Each ledger write is one short transaction that locks the organization's
credit account row (`SELECT ... FOR UPDATE`), reads its grants, writes ledger
entries and their allocations, updates the cached columns and writes an audit
row. Because every writer takes the same row lock first, no interleaving of
requests can overdraw an account or apply one idempotency key twice; the
unique constraints on idempotency keys are the backstop.

Idempotency keys share one space per account, so callers namespace them:
`usage:<client key>`, `hold:<id>:capture`, `stripe:<object id>:...`.

Every write leaves through `Writer.save()`, which announces the change on
the balance-change seam (usage.balance_changes).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime, time
from datetime import timezone as dt_timezone
from typing import TYPE_CHECKING, Any

from django.db import IntegrityError, transaction

from billing_project.errors import InvalidRequest
from orgs.services import audit_fields, audit_record
from usage import balance_changes
from usage.errors import InsufficientCredits, KeyLimitReached, MemberPayer, SpendLimitReached
from usage.models import CreditAccount, EntryKind, Grant, Hold, LedgerEntry
from usage.services import store
from usage.units import credits_str

if TYPE_CHECKING:
    from orgs.services import Actor


# Entries that add a new grant, announced as `granted` (credits.granted).
GRANTING_KINDS = frozenset({EntryKind.GRANT, EntryKind.TRANSFER_IN, EntryKind.ADJUSTMENT})


def lock_account(org_id: int) -> CreditAccount:
    """Lock the org's account row for the rest of the transaction, creating it on first need."""
    account = store.lock_account(org_id)
    if account is None:
        try:
            with transaction.atomic():
                CreditAccount.objects.create(org_id=org_id)
        except IntegrityError:
            pass  # created concurrently; lock that one
        account = store.lock_account(org_id)
    return account


def lock_accounts(org_ids: list[int]) -> dict[int, CreditAccount]:
    # Always in the same order, so two transfers in opposite directions cannot deadlock.
    return {org_id: lock_account(org_id) for org_id in sorted(set(org_ids))}


def month_start(when: datetime) -> date:
    """The calendar month (UTC) a member's spend counts in."""
    return when.astimezone(dt_timezone.utc).date().replace(day=1)


def month_began(when: datetime) -> datetime:
    """The first instant of the calendar month (UTC) `when` counts in."""
    return datetime.combine(month_start(when), time.min, tzinfo=dt_timezone.utc)


def require_positive(amount_micros: int, what: str = "amount") -> int:
    if not isinstance(amount_micros, int) or isinstance(amount_micros, bool):
        raise InvalidRequest(f"The {what} must be a whole number of micro-credits.", code="invalid_amount")
    if amount_micros <= 0:
        raise InvalidRequest(f"The {what} must be greater than zero.", code="invalid_amount")
    return amount_micros


def require_non_negative(value: int, message: str, code: str) -> int:
    """A whole number of micro-credits, zero or more, or InvalidRequest(message, code)."""
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise InvalidRequest(message, code=code)
    return value


def audit(org_id: int, action: str, actor: Actor, **data: Any) -> None:
    """Write an audit row now, in the current transaction (outside a writer)."""
    audit_record(org=org_id, action=action, actor=actor, data=data)


def existing_entry(account: CreditAccount, key: str | None) -> LedgerEntry | None:
    """The entry an idempotency key already wrote on this account, if any."""
    if not key:
        return None
    return LedgerEntry.objects.filter(account=account, idempotency_key=key).first()


@dataclass(frozen=True, slots=True)
class Route:
    """A write on a member's personal account for usage of another organization
    (`member_usage: personal`, usage.services.routing). The member's spend counts
    on that organization's account, whose caps apply; a 402 names the member."""

    org_id: int  # the organization the usage is for
    org_name: str
    account_id: int  # its credit account: the MemberSpend rows its caps read
    payer: MemberPayer


class Writer:
    """Writes entries for one locked account inside one transaction, keeping the
    cached balance, debt and grant remainders in step with what it writes.

    Nothing reaches the database until `save()`, which writes every entry,
    allocation, usage event, audit row, grant and spend change and the account's
    cached columns in one statement (see `store.flush`). `save()` is the one
    exit of every ledger write: it announces the change to the balance-change
    seam.
    """

    def __init__(self, account: CreditAccount, now: datetime) -> None:
        self.account = account
        self.now = now
        # As locked, before this writer changes anything: the announced change compares.
        self.before = balance_changes.Figures(account.balance_micros, account.held_micros, account.debt_micros)
        self.loaded: store.Loaded | None = None
        self.server_applied = False
        self.expired: list[LedgerEntry] = []
        self._grants: list[Grant] | None = None
        self._entry_ids: list[int] = []
        self._entries: list[LedgerEntry] = []
        self._allocations: list[tuple[int, int, int]] = []
        self._touched: dict[int, Grant] = {}
        self._events: list[str] = []
        self._audits: list[dict[str, Any]] = []
        self._spend: dict[tuple[int, date], int] = {}
        # The API key whose monthly limit this write counts against (load_key), and
        # what the write has spent of it so far.
        self.key: store.KeyBudget | None = None
        self._key_spend = 0
        self._granted: list[balance_changes.Granted] = []
        self._holds_expired: list[balance_changes.ExpiredHold] = []
        self.route: Route | None = None

    @classmethod
    def locked(cls, org_id: int, now: datetime, **load: Any) -> Writer:
        """Lock the org's account and read what the write decides on, in one round
        trip: the writer comes back loaded (see `store.lock_and_load`)."""
        locked = store.lock_and_load(org_id, now=now, **load)
        if locked is None:
            lock_account(org_id)  # creates the account, then locks it
            locked = store.lock_and_load(org_id, now=now, **load)
        account, loaded = locked
        writer = cls(account, now)
        writer._use(loaded)
        return writer

    @classmethod
    def applied(cls, result: dict, now: datetime) -> Writer:
        """A writer for a write usage_ledger_debit already made, so that it too
        leaves through `save()`."""
        account = store.account_from(result["account"])
        writer = cls(account, now)  # records the figures as locked, before the debit
        account.balance_micros = result["balance_after"]
        account.debt_micros += result["debt_added"]
        writer.server_applied = True
        return writer

    def load(self, *, entries: int = 1, **kwargs: Any) -> store.Loaded:
        """Read grants, replays, caps and fresh ids in one statement (see `store.load`)."""
        return self._use(store.load(self.account, now=self.now, entries=entries, **kwargs))

    def load_key(self, prefix: str | None) -> store.KeyBudget | None:
        """Read, under the lock, the limit of the API key `prefix` and what counts
        against it; from then on `spend` counts towards it and `require_affordable`
        checks it. Nothing happens for a key without a limit."""
        self.key = store.key_budget(self.account.pk, prefix, month_start(self.now)) if prefix else None
        return self.key

    def _use(self, loaded: store.Loaded) -> store.Loaded:
        self.loaded = loaded
        self._entry_ids = loaded.entry_ids
        return loaded

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
        if amount_micros > 0 and kind in GRANTING_KINDS and entry.grant_id is not None:
            self._granted.append(balance_changes.Granted(
                grant_id=entry.grant_id, entry_id=entry.pk, amount_micros=amount_micros,
                source=entry.metadata.get("source", ""),
            ))
        for grant, part in allocations:
            grant.remaining_micros += part
            self._touched[grant.pk] = grant
            self._allocations.append((entry.pk, grant.pk, part))
        return entry

    def event(self, row_json: str) -> None:
        """Queue a usage event's row, as a JSON object (see usage.services.events)."""
        self._events.append(row_json)

    def next_event_id(self) -> int:
        """The id of a usage event about to be queued, drawn by `load(events=n)`."""
        return self.loaded.event_ids.pop(0)

    def next_entry_id(self) -> int:
        """Draw the id of an entry about to be written (to reference it before `write`)."""
        if not self._entry_ids:
            self._entry_ids = store.reserve_entry_ids(4)
        return self._entry_ids.pop(0)

    def spend(self, member_id: int | None, amount_micros: int) -> None:
        """Count a debit towards a member's month (see MemberSpend) and the loaded
        key's (KeySpend)."""
        if self.key is not None:
            self._key_spend += amount_micros
        if member_id is not None and amount_micros:
            key = (member_id, month_start(self.now))
            self._spend[key] = self._spend.get(key, 0) + amount_micros

    def release(self, hold: Hold) -> None:
        """Free what an open hold still reserves in the figures this writer decides on:
        the account's held credits and, when its cap was loaded, its member's."""
        self._unhold(hold, hold.left_micros)

    def hold_use(self, hold: Hold, amount_micros: int) -> None:
        """Spend `amount_micros` of an open hold's reservation (negative: give it
        back): the hold's `used_micros` and the figures this writer decides on
        (the account's held credits, its member's cap and its key's limit, when
        loaded) move together, so a check after it sees the reservation gone."""
        hold.used_micros += amount_micros
        self._unhold(hold, amount_micros)

    def _unhold(self, hold: Hold, amount_micros: int) -> None:
        self.account.held_micros -= amount_micros
        cap = self.loaded.members.get(hold.member_id) if self.loaded is not None and hold.member_id else None
        if cap is not None:
            cap["held"] -= amount_micros
        if self.key is not None and hold.api_key_prefix == self.key.prefix:
            self.key.held_micros -= amount_micros

    def hold_expired(self, hold: Hold, left_micros: int) -> None:
        """Note that this write closes `hold` because it expired, freeing `left_micros`
        (announced in the change)."""
        self._holds_expired.append(balance_changes.ExpiredHold(hold_id=hold.pk, amount_micros=left_micros))

    def pending_key_spend(self) -> int:
        return self._key_spend

    def pending_spend(self, member_id: int) -> int:
        return self._spend.get((member_id, month_start(self.now)), 0)

    def audit(self, action: str, actor: Actor, **data: Any) -> None:
        """Queue an audit row; it is written by `save()`, in the same transaction."""
        self._audits.append(audit_fields(org=self.account.org_id, action=action, actor=actor, data=data))

    def audit_routed(self, action: str, actor: Actor, **data: Any) -> None:
        """Queue the audit row of a routed write on both trails: the organization the
        usage was for (naming the member who paid) and the member's personal one."""
        route = self.route
        self.audit(action, actor, for_org=route.org_name, **data)
        # The organization never sees the member's balance, not even in its trail.
        shown = {key: value for key, value in data.items() if key != "balance_after"}
        self.audit_for(route.org_id, action, actor, paid_by=route.payer.email, **shown)

    def audit_for(self, org_id: int, action: str, actor: Actor, **data: Any) -> None:
        """Queue an audit row on another organization's trail, written with this write."""
        self._audits.append(audit_fields(org=org_id, action=action, actor=actor, data=data))

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
        if self.key is not None:
            self.key.spent_micros += self._key_spend
            self._key_spend = 0
        # Outside a transaction the receivers run at once, which is right: the
        # single-statement debit has already committed.
        balance_changes.announce(self.change())
        self.before = balance_changes.Figures(account.balance_micros, account.held_micros, account.debt_micros)
        self._granted, self._holds_expired = [], []

    def change(self) -> balance_changes.BalanceChange:
        """What this writer has done to the account since it locked it (or last saved)."""
        account = self.account
        return balance_changes.BalanceChange(
            org_id=account.org_id,
            before=self.before,
            after=balance_changes.Figures(account.balance_micros, account.held_micros, account.debt_micros),
            low_line_micros=balance_changes.low_balance_micros(account.low_balance_threshold_micros),
            auto_topup_threshold_micros=account.auto_topup_threshold_micros,
            overage_allowed=account.overage_allowed,
            # Random, not derived from entry ids: some writes (a hold) write no entry.
            write_id=uuid.uuid4().hex,
            granted=tuple(self._granted),
            holds_expired=tuple(self._holds_expired),
        )

    def _flush(self) -> None:
        account = self.account
        store.flush(
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
            audits=[{**fields, "created_at": self.now} for fields in self._audits],
            spend=[
                {"account_id": self.route.account_id if self.route is not None else account.pk,
                 "member_id": member_id, "month": month, "spent_micros": amount}
                for (member_id, month), amount in self._spend.items()
            ],
            key_spend=[
                {"account_id": self.route.account_id if self.route is not None else account.pk,
                 "api_key_prefix": self.key.prefix, "month": month_start(self.now),
                 "spent_micros": self._key_spend}
            ] if self.key is not None and self._key_spend else [],
        )


def require_affordable(
    writer: Writer, amount_micros: int, member_id: int | None, *, strict: bool | None = None, taken_micros: int = 0,
) -> None:
    """Refuse with 402 what the account, the member's monthly cap or the loaded
    API key's monthly limit (`Writer.load_key`) cannot cover.

    `strict` defaults to the plan: accounts allowed overage may go past zero
    (into debt); holds pass strict=True, since a negative balance blocks new work.
    `taken_micros` is what the same write takes first, unchecked (the held part
    of a capture): `amount_micros` must fit in what is left after it. The 402
    names the whole of it.
    """
    account = writer.account
    if strict is None:
        strict = not account.overage_allowed
    available = account.available_micros - taken_micros
    if strict and amount_micros > available:
        raise InsufficientCredits(
            balance_micros=account.balance_micros, available_micros=available + taken_micros,
            required_micros=amount_micros + taken_micros,
            payer=writer.route.payer if writer.route is not None else None,
        )
    cap = writer.loaded.members.get(member_id) if member_id is not None and writer.loaded else None
    if cap is not None:
        committed = cap["spent"] + cap["held"] + writer.pending_spend(member_id)
        if committed + taken_micros + amount_micros > cap["limit"]:
            raise SpendLimitReached(
                limit_micros=cap["limit"], spent_micros=committed, required_micros=amount_micros + taken_micros,
                org_id=writer.route.org_id if writer.route is not None else account.org_id,
                member_id=member_id, month=month_start(writer.now),
            )
    key = writer.key
    if key is not None:
        committed = key.spent_micros + key.held_micros + writer.pending_key_spend()
        if committed + taken_micros + amount_micros > key.limit_micros:
            raise KeyLimitReached(
                prefix=key.prefix, limit_micros=key.limit_micros, spent_micros=committed,
                required_micros=amount_micros + taken_micros,
            )
