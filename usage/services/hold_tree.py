"""Trees of holds: a child hold carved out of its parent's reservation
(usage.services.holds makes them), what each spends of its own reservation and
its parents', and how one closes into its parent.

Lock order: (a routed hold's key limit row,) the account row, then hold rows.
Every write to a hold takes its account's row lock first, and a tree of holds
lives on one account, so writes to one tree are serialised by that lock: a
child's row and its parent's are never waited for in opposite orders, and
concurrent children recording or capturing see each other's spending of the
parent's reservation.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from usage.models import Hold, HoldStatus
from usage.services.writer import Writer
from usage.units import credits_str

if TYPE_CHECKING:
    from orgs.services import Actor


def hold_chain(hold: Hold, known: dict[int, Hold] | None = None) -> list[Hold]:
    """`hold` and the holds it was carved from, nearest first, each row locked (call
    it under the account lock). `known` holds the rows this write locked already,
    so that what one child takes from a parent, the next one sees."""
    known = {} if known is None else known
    known.setdefault(hold.pk, hold)
    chain = [hold]
    while chain[-1].parent_id is not None:
        parent_id = chain[-1].parent_id
        if parent_id not in known:
            known[parent_id] = Hold.objects.select_for_update().get(pk=parent_id)
        chain.append(known[parent_id])
    return chain


def hold_take(writer: Writer, chain: list[Hold], amount_micros: int) -> tuple[list[tuple[Hold, int]], int]:
    """Spend up to `amount_micros` of the reservations of `chain` (see hold_chain),
    nearest first: a child that has spent its own goes on with what its parent
    has left. Returns what each hold gave and what none covered."""
    taken, rest = [], amount_micros
    for hold in chain:
        if rest <= 0:
            break
        part = min(rest, hold.left_micros)
        if part > 0:
            writer.hold_use(hold, part)
            taken.append((hold, part))
            rest -= part
    return taken, rest


def hold_untake(writer: Writer, taken: list[tuple[Hold, int]]) -> None:
    """Give back what `hold_take` took (a refused event)."""
    for hold, part in taken:
        writer.hold_use(hold, -part)


def hold_give_back(writer: Writer, child: Hold, parent: Hold, closed_at_micros: int) -> None:
    """A child closes: what it still reserves goes back to its parent (held credits
    do not move), and what it closed at counts as recorded against the parent."""
    returned = child.left_micros
    writer.release(child)
    writer.hold_use(parent, -returned)
    parent.recorded_micros += closed_at_micros


def hold_children_settle(writer: Writer, hold: Hold, actor: Actor, touched: list[Hold]) -> None:
    """Close `hold`'s open children before it closes, deepest first: each is
    captured at what was recorded against it (debited already, so nothing more
    is), and what it has left goes back to `hold`."""
    for child in Hold.objects.select_for_update().filter(parent=hold, status=HoldStatus.OPEN).order_by("pk"):
        hold_children_settle(writer, child, actor, touched)
        hold_give_back(writer, child, hold, child.recorded_micros)
        child.status, child.captured_micros, child.closed_at = HoldStatus.CAPTURED, child.recorded_micros, writer.now
        touched.append(child)
        hold_audit(writer, child, "hold.captured", actor, hold=child.pk, held=credits_str(child.amount_micros),
               captured=credits_str(child.recorded_micros), settled_with=hold.pk)


def holds_save(holds: list[Hold]) -> None:
    # One UPDATE per hold rather than bulk_update: a capture touches the hold and
    # its open children (rarely more than a few), and post_save is how the
    # metrics count holds closed (usage/observers.py); bulk_update sends none.
    fields = ["status", "captured_micros", "closed_at", "used_micros", "recorded_micros"]
    for hold in {h.pk: h for h in holds}.values():
        hold.save(update_fields=fields)


def hold_audit(writer: Writer, target: Hold, action: str, actor: Actor, /, **data) -> None:
    """A hold's audit row: on both trails when a member's balance pays for an org."""
    if target.for_org_id is not None:
        writer.audit(action, actor, for_org=target.for_org.name, **data)
        writer.audit_for(target.for_org_id, action, actor,
                         paid_by=target.member.email if target.member_id else None, **data)
    else:
        writer.audit(action, actor, **data)
