"""The usage-happenings seam: what the usage app noticed that others may want to tell.

Not every event a platform hears about is a balance change. A member's or an
API key's cap refused a debit, a key spends far above its usual rate, a key
was paused or resumed: usage notices these, and apps above it (outbound
webhooks, notifications) react. Usage does not know them; they register a
receiver in `AppConfig.ready()`:

    from usage import happenings

    def tell_platform(happening: happenings.Happening) -> None:
        ...

    happenings.receiver_register(tell_platform)

`happening_announce` hands the happening to every receiver after the current
transaction commits (so a rollback announces nothing). `key` names the
occurrence: announcing the same (type, key) twice is one occurrence, and a
receiver that sends something keys what it sends with it, so a task that runs
twice sends once. A receiver that raises is logged; the others still run.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from django.db import transaction


@dataclass(frozen=True, slots=True)
class Happening:
    """One thing usage noticed about one organization.

    `type` is the platform event's type (`usage.limit_reached`,
    `usage.unusual`, `usage.paused`, `usage.resumed`); `data` its payload,
    JSON-ready (amounts as decimal strings in credits); `key` names this
    occurrence within the organization and type."""

    org_id: int
    type: str
    key: str
    data: Mapping[str, Any] = field(default_factory=dict)


Receiver = Callable[[Happening], None]
_receivers: list[Receiver] = []


def receiver_register(receiver: Receiver) -> Receiver:
    """Call `receiver` after each announced happening commits. Registering twice is harmless."""
    if receiver not in _receivers:
        _receivers.append(receiver)
    return receiver


def receiver_unregister(receiver: Receiver) -> None:
    if receiver in _receivers:
        _receivers.remove(receiver)


def happening_announce(happening: Happening) -> None:
    """Hand `happening` to every receiver once the current transaction commits
    (at once outside a transaction)."""
    for receiver in list(_receivers):
        transaction.on_commit(_bind(receiver, happening), robust=True)


def _bind(receiver: Receiver, happening: Happening) -> Callable[[], None]:
    return lambda: receiver(happening)
