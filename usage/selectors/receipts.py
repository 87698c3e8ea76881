"""Run receipts: everything one workflow run of an organization cost, itemised.

One selector answers the API (`GET /api/v1/runs/{id}`), the receipt page, its
CSV and the MCP tool, so the four can never disagree.

Whose run it is: the organization the usage was *for*. That is its own usage
(its account, no `for_org`) and its members' usage paid from their personal
balances (`for_org` = the organization, member_usage: personal). A personal
organization's receipt does not list what it paid for another
organization's run: that run is the other organization's. Either way the
organization sees what each line cost and who paid, never a member's balance.

Both halves are read through partial indexes on (account, workflow_run_id)
and (for_org, workflow_run_id) of events and holds (migration usage 0019),
so a receipt costs a few index probes whatever the account's history.

The receipt is built from parts (`lines`, `holds`, `tokens`, totals).

What a run cost is what the ledger debited for it, each credit counted in one
run only: its usage events (each names its run), and the part of a hold's
capture that no usage event itemises (a capture by amount beyond what was
recorded against the hold). That part is read from the ledger itself: the
hold's capture entry less the events it debited (a capture with events). It
belongs to the run the hold was reserved for (`Hold.workflow_run_id`), or, for
a hold reserved for no run, to the one run all its events name. So a hold
reserved for run A whose events name run B counts in A only what was captured
beyond those events, while the events count in B; and a parent hold's capture
never counts what its children closed at, which their own capture entries and
events debited.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING

from django.conf import settings
from django.db.models import Count, Q, QuerySet, Sum
from django.utils import timezone

from billing_project.errors import NotFound
from usage.models import CreditAccount, Hold, HoldStatus, LedgerEntry, SpendingToken, UsageEvent
from usage.units import credit_price, credits_value
from usage.wording import usage_phrase

if TYPE_CHECKING:
    from orgs.models import Organization

# The most lines a receipt lists (API, page, tool); its totals always count
# every event, and the CSV streams them all.
RECEIPT_LINES = 1000
MAX_RUN_ID = 255  # UsageEvent.workflow_run_id

ORGANIZATION = "organization"
MEMBER = "member"


class RunNotFound(NotFound):
    code = "run_not_found"
    default_message = "No workflow run with that id in this organization."


@dataclass(frozen=True)
class _MeterWords:
    code: str
    name: str
    unit: str


class _Worded:
    """How a line or subtotal reads to people: "12,400 AI output tokens"."""

    meter: str
    meter_name: str
    unit: str
    quantity: Decimal

    @property
    def phrase(self) -> str:
        return usage_phrase(self.quantity, _MeterWords(self.meter, self.meter_name, self.unit))


@dataclass(frozen=True)
class ReceiptLine(_Worded):
    """One usage event of the run."""

    event_id: int
    occurred_at: datetime
    meter: str
    meter_name: str
    unit: str
    model: str
    quantity: Decimal
    credits_per_unit: Decimal
    credits_micros: int
    billing_mode: str
    member_email: str | None
    paid_by: str  # ORGANIZATION or MEMBER: whose balance paid (never the balance itself)
    hold_id: int | None
    spending_token: str | None  # the prefix of the token that recorded it
    idempotency_key: str


@dataclass(frozen=True)
class ReceiptHold:
    """A hold the run used: reserved for it (its `workflow_run_id`), named by one
    of its events, or carved out of one of those (a child hold)."""

    hold_id: int
    parent_id: int | None  # the hold it was carved out of
    run_id: str  # the run it was reserved for ("" for none): may be another run
    status: str
    reserved_micros: int
    captured_micros: int | None
    prices_locked: bool  # a quote's hold: usage priced at the rates of the quote
    member_email: str | None
    paid_by: str
    created_at: datetime
    closed_at: datetime | None
    expires_at: datetime
    events: int  # of this run's events charged through it
    other_run_events: int  # events of other runs charged through it (counted in their runs)
    # The part of its capture no usage event itemises (a capture by amount
    # beyond what was recorded), when it counts in this run's total (see the
    # module's docstring); 0 when it belongs to another run.
    unitemised_micros: int


@dataclass(frozen=True)
class ReceiptToken:
    """A spending token that recorded some of the run's events."""

    prefix: str
    name: str
    hold_id: int
    ceiling_micros: int
    spent_micros: int  # by all its events, this run's and any other's
    status: str  # active, revoked, expired or hold_closed
    expires_at: datetime
    events: int  # of this run's events it recorded
    events_micros: int


@dataclass(frozen=True)
class MeterSubtotal(_Worded):
    meter: str
    meter_name: str
    unit: str
    quantity: Decimal
    credits_micros: int
    events: int


@dataclass(frozen=True)
class Receipt:
    run_id: str
    org_slug: str
    lines: list[ReceiptLine]
    line_count: int  # every event of the run; `lines` holds at most RECEIPT_LINES
    holds: list[ReceiptHold]
    tokens: list[ReceiptToken]
    by_meter: list[MeterSubtotal]
    events_micros: int  # the run's events, all of them
    paid_by_org_micros: int
    paid_by_members_micros: int
    first_at: datetime | None
    last_at: datetime | None
    credit_price: Decimal
    currency: str

    @property
    def unitemised_micros(self) -> int:
        return sum(h.unitemised_micros for h in self.holds)

    @property
    def total_micros(self) -> int:
        """What the run cost: its events, and what holds of the run captured beyond their events."""
        return self.events_micros + self.unitemised_micros

    @property
    def total_money(self) -> Decimal:
        return credits_value(self.total_micros)

    @property
    def truncated(self) -> bool:
        return self.line_count > len(self.lines)


def _run_id_check(run_id: str) -> None:
    if not run_id or len(run_id) > MAX_RUN_ID:
        raise RunNotFound()


def _whose(org: Organization) -> Q:
    """The org's own rows (its account, not paid for another org) and its members' paid personally."""
    account_id = CreditAccount.objects.filter(org=org).values_list("pk", flat=True).first()
    whose = Q(for_org=org)
    if account_id is not None:
        whose |= Q(account_id=account_id, for_org__isnull=True)
    return whose


def run_events(whose: Q, run_id: str) -> QuerySet[UsageEvent]:
    """The run's events among `whose` (see `_whose`), oldest first."""
    _run_id_check(run_id)
    return (UsageEvent.objects.filter(whose, workflow_run_id=run_id)
            .select_related("meter", "member", "spending_token").order_by("occurred_at", "id"))


def _line(event: UsageEvent) -> ReceiptLine:
    return ReceiptLine(
        event_id=event.pk, occurred_at=event.occurred_at, meter=event.meter.code, meter_name=event.meter.name,
        unit=event.meter.unit, model=event.model, quantity=event.quantity, credits_per_unit=event.credits_per_unit,
        credits_micros=event.credits_micros, billing_mode=event.billing_mode,
        member_email=event.member.email if event.member_id else None,
        paid_by=MEMBER if event.for_org_id is not None else ORGANIZATION, hold_id=event.hold_id,
        spending_token=event.spending_token.prefix if event.spending_token_id else None,
        idempotency_key=event.idempotency_key,
    )


def run_receipt_lines(org: Organization, run_id: str) -> Iterator[ReceiptLine]:
    """Every line of the run, oldest first, streamed from a server-side cursor
    (the CSV); 404 run_not_found, before any line, for a run the org does not have."""
    whose = _whose(org)
    events = run_events(whose, run_id)
    if not events.exists() and not Hold.objects.filter(whose, workflow_run_id=run_id).exists():
        raise RunNotFound()
    return (_line(event) for event in events.iterator(chunk_size=2000))


def _involved_holds(whose: Q, run_id: str, named: set[int]) -> dict[int, Hold]:
    """The holds reserved for the run, those its events name, and every hold carved
    out of one of these (children of other runs included: their closing counts in
    their runs, not in their parent's capture)."""
    # Plain queries rather than one OR: each is one index probe.
    holds = {h.pk: h for h in Hold.objects.filter(whose, workflow_run_id=run_id).select_related("member")}
    missing = named - set(holds)
    if missing:
        holds.update((h.pk, h) for h in Hold.objects.filter(whose, pk__in=missing).select_related("member"))
    parents = set(holds)
    while parents:  # at most HOLD_MAX_DEPTH rounds
        children = {h.pk: h for h in Hold.objects.filter(whose, parent_id__in=parents).select_related("member")
                    if h.pk not in holds}
        holds.update(children)
        parents = set(children)
    return holds


def _unitemised(holds: dict[int, Hold]) -> tuple[dict[int, int], dict[int, int]]:
    """For each captured hold, what its capture entry debited that no usage event
    itemises; and for every hold, how many events (of any run) were charged through it."""
    captured = [h.pk for h in holds.values() if h.status == HoldStatus.CAPTURED]
    # A capture writes one entry, keyed per hold (usage.services.holds.hold_capture_locked);
    # a capture of no more than was recorded writes none.
    entries = {
        entry_id: (hold_id, -amount) for entry_id, hold_id, amount in LedgerEntry.objects.filter(
            hold_id__in=captured, idempotency_key__in=[Hold.capture_key(pk) for pk in captured],
        ).values_list("pk", "hold_id", "amount_micros")
    } if captured else {}
    counts: dict[int, int] = {}
    itemised: dict[int, int] = {}  # the events a capture entry debited (a capture with events)
    for row in (UsageEvent.objects.filter(hold_id__in=list(holds)).values("hold_id").order_by()
                .annotate(n=Count("id"), at_capture=Sum("credits_micros", filter=Q(ledger_entry_id__in=list(entries))))):
        counts[row["hold_id"]] = row["n"]
        itemised[row["hold_id"]] = row["at_capture"] or 0
    return {hold_id: debited - itemised.get(hold_id, 0) for hold_id, debited in entries.values()}, counts


def _holds(whose: Q, run_id: str, per_hold: dict[int, int]) -> list[ReceiptHold]:
    holds = _involved_holds(whose, run_id, set(per_hold))
    unitemised, counts = _unitemised(holds) if holds else ({}, {})
    out = []
    for hold in sorted(holds.values(), key=lambda h: (h.created_at, h.pk)):
        count = per_hold.get(hold.pk, 0)
        everywhere = counts.get(hold.pk, 0)
        # Whose run the capture beyond its events is: the hold's own, or, reserved
        # for no run, the one run every event charged through it names.
        ours = hold.workflow_run_id == run_id or (not hold.workflow_run_id and 0 < count == everywhere)
        captured = hold.captured_micros if hold.status == HoldStatus.CAPTURED else None
        out.append(ReceiptHold(
            hold_id=hold.pk, parent_id=hold.parent_id, run_id=hold.workflow_run_id, status=hold.status,
            reserved_micros=hold.amount_micros, captured_micros=captured, prices_locked=hold.locked_rates is not None,
            member_email=hold.member.email if hold.member_id else None,
            paid_by=MEMBER if hold.for_org_id is not None else ORGANIZATION,
            created_at=hold.created_at, closed_at=hold.closed_at, expires_at=hold.expires_at, events=count,
            other_run_events=everywhere - count, unitemised_micros=unitemised.get(hold.pk, 0) if ours else 0,
        ))
    return out


def _tokens(per_token: dict[int, list[int]]) -> list[ReceiptToken]:
    if not per_token:
        return []
    now = timezone.now()
    tokens = SpendingToken.objects.filter(pk__in=list(per_token)).select_related("hold").order_by("created_at", "pk")
    return [
        ReceiptToken(
            prefix=token.prefix, name=token.name, hold_id=token.hold_id, ceiling_micros=token.ceiling_micros,
            spent_micros=token.spent_micros, status=token.status_with_hold_at(now), expires_at=token.expires_at,
            events=per_token[token.pk][0], events_micros=per_token[token.pk][1],
        )
        for token in tokens
    ]


def run_receipt(org: Organization, run_id: str, *, line_limit: int = RECEIPT_LINES) -> Receipt:
    """The receipt of `org`'s workflow run `run_id`; 404 run_not_found when the
    org has no event or hold with that run id (another org's run included)."""
    whose = _whose(org)
    events = run_events(whose, run_id)
    lines: list[ReceiptLine] = []
    line_count = events_micros = by_org = by_members = 0
    first_at = last_at = None
    meters: dict[str, list] = {}
    per_hold: dict[int, int] = {}  # the run's events through each hold
    per_token: dict[int, list[int]] = {}  # the run's events each token recorded: [count, micro-credits]
    # One pass over the run's events: a run is thousands of events at most,
    # and the totals must count every one even when the lines stop.
    for event in events.iterator(chunk_size=2000):
        line = _line(event)
        line_count += 1
        if len(lines) < line_limit:
            lines.append(line)
        events_micros += line.credits_micros
        if line.paid_by == MEMBER:
            by_members += line.credits_micros
        else:
            by_org += line.credits_micros
        first_at = first_at or line.occurred_at
        last_at = line.occurred_at
        subtotal = meters.setdefault(line.meter, [line.meter_name, line.unit, Decimal(0), 0, 0])
        subtotal[2] += line.quantity
        subtotal[3] += line.credits_micros
        subtotal[4] += 1
        if line.hold_id is not None:
            per_hold[line.hold_id] = per_hold.get(line.hold_id, 0) + 1
        if event.spending_token_id is not None:
            used = per_token.setdefault(event.spending_token_id, [0, 0])
            used[0] += 1
            used[1] += line.credits_micros
    holds = _holds(whose, run_id, per_hold)
    if line_count == 0 and not holds:
        raise RunNotFound()
    for hold in holds:
        if hold.paid_by == MEMBER:
            by_members += hold.unitemised_micros
        else:
            by_org += hold.unitemised_micros
    by_meter = sorted(
        (MeterSubtotal(code, name, unit, qty, credits, n) for code, (name, unit, qty, credits, n) in meters.items()),
        key=lambda m: (-m.credits_micros, m.meter),
    )
    return Receipt(
        run_id=run_id, org_slug=org.slug, lines=lines, line_count=line_count, holds=holds, tokens=_tokens(per_token),
        by_meter=by_meter,
        events_micros=events_micros, paid_by_org_micros=by_org, paid_by_members_micros=by_members,
        first_at=first_at, last_at=last_at, credit_price=credit_price(), currency=settings.CURRENCY.lower(),
    )
