"""The balance-change seam: how other apps react to the ledger without it knowing them.

Every ledger write ends in `Writer.save()` (usage.services.writer), which
describes what it did to the account as one `BalanceChange`: the figures
before and after, and the lines they crossed. After the transaction commits,
each registered receiver is called with it. Apps above usage register their
receivers in `AppConfig.ready()`:

    from usage import balance_changes

    def top_up_when_low(change: balance_changes.BalanceChange) -> None:
        if change.fell_below(change.auto_topup_threshold_micros):
            ...

    balance_changes.receiver_register(top_up_when_low)

A receiver runs after commit, once per write, on the process that wrote.
Keep it quick (queue a task, keyed so that a repeat does nothing) and let the
task re-check under its own locks: the balance may have moved again since.
A receiver that raises is logged; the others still run, and the write stands.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction

from usage.units import credits_to_micros


def low_balance_micros(threshold_micros: int | None = None) -> int:
    """Available credits below which a balance is "low": the org's own threshold
    (`CreditAccount.low_balance_threshold_micros`, set in its alert preferences)
    when it has one, else the deployment's LOW_BALANCE_CREDITS. The API, the
    header, the overview and the low-balance alerts all use this."""
    if threshold_micros is not None:
        return threshold_micros
    return credits_to_micros(settings.LOW_BALANCE_CREDITS)


@dataclass(frozen=True, slots=True)
class Figures:
    """An account's cached figures at one moment, in micro-credits."""

    balance_micros: int
    held_micros: int
    debt_micros: int

    @property
    def available_micros(self) -> int:
        """What can be spent: the balance less what holds reserve."""
        return self.balance_micros - self.held_micros


@dataclass(frozen=True, slots=True)
class Granted:
    """Credits one write added as a new grant (a purchase, an allowance, a transfer in, an adjustment)."""

    grant_id: int
    entry_id: int
    amount_micros: int
    source: str


@dataclass(frozen=True, slots=True)
class ExpiredHold:
    """An open hold the write closed because it passed its expiry, freeing its reservation."""

    hold_id: int
    amount_micros: int


class Line(enum.Enum):
    """The lines of available credits a change can cross."""

    BELOW_LOW = "below_low"  # fell below the low-balance line
    DEPLETED = "depleted"  # fell to zero or below
    ABOVE_ZERO = "above_zero"  # rose from zero or below to above zero
    ABOVE_LOW = "above_low"  # rose from below the low-balance line to at or above it


@dataclass(frozen=True, slots=True)
class BalanceChange:
    """What one ledger write did to one organization's account."""

    org_id: int
    before: Figures
    after: Figures
    low_line_micros: int
    auto_topup_threshold_micros: int | None
    overage_allowed: bool
    # Names this write (one `Writer.save()`), so that a receiver can key what it
    # sends by it: a task that runs twice for the same write sends once.
    write_id: str = ""
    granted: tuple[Granted, ...] = ()
    holds_expired: tuple[ExpiredHold, ...] = ()

    @property
    def crossed(self) -> frozenset[Line]:
        was, now, low = self.before.available_micros, self.after.available_micros, self.low_line_micros
        lines = set()
        if now < low <= was:
            lines.add(Line.BELOW_LOW)
        if now <= 0 < was:
            lines.add(Line.DEPLETED)
        if was <= 0 < now:
            lines.add(Line.ABOVE_ZERO)
        if was < low <= now:
            lines.add(Line.ABOVE_LOW)
        return frozenset(lines)

    def fell_below(self, line_micros: int | None) -> bool:
        """Whether the balance (not counting holds) went from at or above `line_micros` to below it."""
        return line_micros is not None and self.after.balance_micros < line_micros <= self.before.balance_micros

    @property
    def debt_grew(self) -> bool:
        return self.after.debt_micros > self.before.debt_micros


Receiver = Callable[[BalanceChange], None]
_receivers: list[Receiver] = []


def receiver_register(receiver: Receiver) -> Receiver:
    """Call `receiver` after every ledger write commits. Registering twice is harmless."""
    if receiver not in _receivers:
        _receivers.append(receiver)
    return receiver


def receiver_unregister(receiver: Receiver) -> None:
    if receiver in _receivers:
        _receivers.remove(receiver)


def announce(change: BalanceChange) -> None:
    """Hand `change` to every receiver once the current transaction commits
    (at once outside a transaction: the write has committed already)."""
    for receiver in list(_receivers):
        transaction.on_commit(_bind(receiver, change), robust=True)


def _bind(receiver: Receiver, change: BalanceChange) -> Callable[[], None]:
    return lambda: receiver(change)
