"""What usage counts for /metrics, from its seams rather than from the hot path.

The ledger's writer is not edited to count: a balance-change receiver reads
each write's `BalanceChange` after commit, and Django's `post_save` on `Hold`
(every hold is created and closed through the ORM) counts holds once their
transaction commits. Each is a few increments in this process's metrics file:
no query, no round trip. Registered in `UsageConfig.ready()`.
"""

from __future__ import annotations

from django.db import transaction

from billing_project import metrics
from usage.balance_changes import BalanceChange
from usage.models import GrantSource, Hold, HoldStatus

_SOURCES = frozenset(GrantSource.values)
_CLOSED = {HoldStatus.CAPTURED: "captured", HoldStatus.RELEASED: "released", HoldStatus.EXPIRED: "expired"}


def balance_change_counted(change: BalanceChange) -> None:
    """Count one ledger write: credits that left balances, grants by source, lines crossed."""
    metrics.LEDGER_WRITES.inc()
    # A debit past zero lowers the balance by all of it (balance = remaining - debt).
    taken = change.before.balance_micros - change.after.balance_micros + sum(g.amount_micros for g in change.granted)
    if taken > 0:
        metrics.CREDITS_DEBITED.inc(taken)
    for granted in change.granted:
        metrics.CREDITS_GRANTED.labels(granted.source if granted.source in _SOURCES else "other").inc(granted.amount_micros)
    for line in change.crossed:
        metrics.LINES_CROSSED.labels(line.value).inc()


def usage_events_counted(*, surface: str, recorded: int = 0, replayed: int = 0, refused: int = 0) -> None:
    """Count usage events as an entry point answered them (`surface`: api, mcp).
    Not from the writer: its announced change carries figures, not events."""
    for result, count in (("recorded", recorded), ("replayed", replayed), ("refused", refused)):
        if count:
            metrics.USAGE_EVENTS.labels(surface, result).inc(count)


def hold_saved(sender, instance: Hold, created: bool, update_fields=None, **kwargs) -> None:
    """Count a hold made or closed, once its transaction commits (a refused capture rolls back uncounted)."""
    if created:
        event = "created"
    elif update_fields is not None and "status" in update_fields and instance.status in _CLOSED:
        event = _CLOSED[instance.status]
    else:
        return
    transaction.on_commit(metrics.HOLDS.labels(event).inc, robust=True)
