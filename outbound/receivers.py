"""What outbound sends when usage reports something (its two seams).

Balance changes happen on the request path, so the receiver only decides
whether the change calls for an event (a set test on each write) and, when it
does, queues one task with the change's figures; the task sends the events.
Each event is keyed by what it describes (the write, the grant, the hold), so
a task that runs twice sends each once. Two writers cannot both cross a line:
each locks the account, and the change compares the figures as it locked them.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from celery import shared_task

from outbound.services import event_send
from usage.balance_changes import BalanceChange, Line
from usage.happenings import Happening
from usage.units import credits_str


def balance_events_when_crossing(change: BalanceChange) -> None:
    """Queue the balance events this write calls for, if any (most writes call for none)."""
    if change.crossed or change.granted or change.holds_expired:
        balance_events.delay(_change_dict(change))


def event_from_happening(happening: Happening) -> None:
    """usage.limit_reached, usage.unusual, usage.paused, usage.resumed: one event per (type, key)."""
    event_send(org_id=happening.org_id, type=happening.type, data=happening.data, key=happening.key)


@shared_task(name="outbound.balance_events")
def balance_events(change: dict[str, Any]) -> int:
    """Send the events of one balance change (see `_change_dict`); returns how many were new."""
    sent = 0
    crossed = {Line(line) for line in change["crossed"]}
    figures = _figures(change)
    key = change["write_id"]
    org_id = change["org_id"]
    # Falling from above the line to nothing in one write is depleted, not also low.
    if Line.BELOW_LOW in crossed and Line.DEPLETED not in crossed:
        sent += _sent(event_send(org_id=org_id, type="balance.low", data=figures, key=key))
    if Line.DEPLETED in crossed:
        sent += _sent(event_send(org_id=org_id, type="balance.depleted", data=figures, key=key))
    for granted in change["granted"]:
        data = {"grant_id": granted["grant_id"], "amount": credits_str(granted["amount_micros"]),
                "source": granted["source"], **figures}
        sent += _sent(event_send(org_id=org_id, type="credits.granted", data=data, key=f"grant:{granted['grant_id']}"))
    for hold in change["holds_expired"]:
        data = {"hold_id": hold["hold_id"], "amount": credits_str(hold["amount_micros"]), **figures}
        sent += _sent(event_send(org_id=org_id, type="hold.expired", data=data, key=f"hold:{hold['hold_id']}"))
    # After the grants: a platform reading in sequence sees the credits arrive, then the all-clear.
    if Line.ABOVE_LOW in crossed or (Line.ABOVE_ZERO in crossed and change["low_line_micros"] <= 0):
        sent += _sent(event_send(org_id=org_id, type="balance.replenished", data=figures, key=key))
    return sent


def _sent(event: object) -> int:
    return 0 if event is None else 1


def _change_dict(change: BalanceChange) -> dict[str, Any]:
    """The change as plain JSON for the task's message."""
    return {
        "org_id": change.org_id, "write_id": change.write_id,
        "before": {"balance_micros": change.before.balance_micros, "held_micros": change.before.held_micros},
        "after": {"balance_micros": change.after.balance_micros, "held_micros": change.after.held_micros,
                  "debt_micros": change.after.debt_micros},
        "low_line_micros": change.low_line_micros,
        "crossed": sorted(line.value for line in change.crossed),
        "granted": [asdict(g) for g in change.granted],
        "holds_expired": [asdict(h) for h in change.holds_expired],
    }


def _figures(change: dict[str, Any]) -> dict[str, str]:
    """The account as the write left it, in credits (decimal strings)."""
    before, after = change["before"], change["after"]
    return {
        "available": credits_str(after["balance_micros"] - after["held_micros"]),
        "previous_available": credits_str(before["balance_micros"] - before["held_micros"]),
        "balance": credits_str(after["balance_micros"]),
        "held": credits_str(after["held_micros"]),
        "debt": credits_str(after["debt_micros"]),
        "low_balance_line": credits_str(change["low_line_micros"]),
    }
