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

The receipt is built from parts (`lines`, `holds`, totals) so a further part,
such as the spending tokens a run used, is one more field filled in
`run_receipt`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING

from django.conf import settings
from django.db.models import Q, QuerySet

from billing_project.errors import NotFound
from usage.models import CreditAccount, Hold, HoldStatus, UsageEvent
from usage.units import credit_price, credits_value
from usage.wording import quantity_str, usage_phrase

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

    @property
    def quantity_text(self) -> str:
        return quantity_str(self.quantity)


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
    idempotency_key: str


@dataclass(frozen=True)
class ReceiptHold:
    """A hold the run used: reserved for it (its `workflow_run_id`) or named by one of its events."""

    hold_id: int
    status: str
    reserved_micros: int
    captured_micros: int | None
    member_email: str | None
    paid_by: str
    created_at: datetime
    closed_at: datetime | None
    expires_at: datetime
    events: int  # of this run's events charged through it
    # A hold captured with an amount and none of the run's events through it:
    # its capture is what the run was charged, with no lines to show for it.
    unitemised_micros: int


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
    by_meter: list[MeterSubtotal]
    events_micros: int  # the run's events, all of them
    paid_by_org_micros: int
    paid_by_members_micros: int
    first_at: datetime | None
    last_at: datetime | None
    credit_price: Decimal
    currency: str
    # Further parts of a run (the spending tokens that recorded its usage, when
    # events name one) go here, filled by one more read in `run_receipt` and
    # rendered beside `holds` in usage.serializers.receipt_data.

    @property
    def unitemised_micros(self) -> int:
        return sum(h.unitemised_micros for h in self.holds)

    @property
    def total_micros(self) -> int:
        """What the run cost: its events, and holds captured for it without events."""
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


def run_events(org: Organization, run_id: str, *, whose: Q | None = None) -> QuerySet[UsageEvent]:
    """The run's events, oldest first."""
    _run_id_check(run_id)
    return (UsageEvent.objects.filter(whose or _whose(org), workflow_run_id=run_id)
            .select_related("meter", "member").order_by("occurred_at", "id"))


def _line(event: UsageEvent) -> ReceiptLine:
    return ReceiptLine(
        event_id=event.pk, occurred_at=event.occurred_at, meter=event.meter.code, meter_name=event.meter.name,
        unit=event.meter.unit, model=event.model, quantity=event.quantity, credits_per_unit=event.credits_per_unit,
        credits_micros=event.credits_micros, billing_mode=event.billing_mode,
        member_email=event.member.email if event.member_id else None,
        paid_by=MEMBER if event.for_org_id is not None else ORGANIZATION, hold_id=event.hold_id,
        idempotency_key=event.idempotency_key,
    )


def run_receipt_lines(org: Organization, run_id: str) -> Iterator[ReceiptLine]:
    """Every line of the run, oldest first, streamed from a server-side cursor
    (the CSV); 404 run_not_found, before any line, for a run the org does not have."""
    whose = _whose(org)
    events = run_events(org, run_id, whose=whose)
    if not events.exists() and not Hold.objects.filter(whose, workflow_run_id=run_id).exists():
        raise RunNotFound()
    return (_line(event) for event in events.iterator(chunk_size=2000))


def _holds(whose: Q, run_id: str, per_hold: dict[int, int]) -> list[ReceiptHold]:
    # Two plain queries rather than one OR: each is one index probe.
    holds = {h.pk: h for h in Hold.objects.filter(whose, workflow_run_id=run_id).select_related("member")}
    named = set(per_hold) - set(holds)
    if named:
        holds.update((h.pk, h) for h in Hold.objects.filter(whose, pk__in=named).select_related("member"))
    out = []
    for hold in sorted(holds.values(), key=lambda h: (h.created_at, h.pk)):
        count = per_hold.get(hold.pk, 0)
        captured = hold.captured_micros if hold.status == HoldStatus.CAPTURED else None
        out.append(ReceiptHold(
            hold_id=hold.pk, status=hold.status, reserved_micros=hold.amount_micros, captured_micros=captured,
            member_email=hold.member.email if hold.member_id else None,
            paid_by=MEMBER if hold.for_org_id is not None else ORGANIZATION,
            created_at=hold.created_at, closed_at=hold.closed_at, expires_at=hold.expires_at, events=count,
            unitemised_micros=(captured or 0) if count == 0 else 0,
        ))
    return out


def run_receipt(org: Organization, run_id: str, *, line_limit: int = RECEIPT_LINES) -> Receipt:
    """The receipt of `org`'s workflow run `run_id`; 404 run_not_found when the
    org has no event or hold with that run id (another org's run included)."""
    whose = _whose(org)
    events = run_events(org, run_id, whose=whose)
    lines: list[ReceiptLine] = []
    line_count = events_micros = by_org = by_members = 0
    first_at = last_at = None
    meters: dict[str, list] = {}
    per_hold: dict[int, int] = {}  # the run's events through each hold
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
        run_id=run_id, org_slug=org.slug, lines=lines, line_count=line_count, holds=holds, by_meter=by_meter,
        events_micros=events_micros, paid_by_org_micros=by_org, paid_by_members_micros=by_members,
        first_at=first_at, last_at=last_at, credit_price=credit_price(), currency=settings.CURRENCY.lower(),
    )
