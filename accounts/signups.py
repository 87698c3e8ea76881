"""The sign-up seam: apps above accounts react to a new account without
accounts knowing them (billing starts the sign-up trial).

Receivers are registered once, in their app's `AppConfig.ready()`, and run in
registration order inside the sign-up transaction: one that fails undoes the
whole sign-up, so no account is left without what its receivers set up.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from accounts.models import User
from orgs.models import Organization


@dataclass(frozen=True)
class SignedUp:
    user: User
    org: Organization  # the user's personal organization, which they own


SignupReceiver = Callable[[SignedUp], None]

_receivers: list[SignupReceiver] = []


def receiver_add(receiver: SignupReceiver) -> None:
    """Run `receiver` for every sign-up from now on (once, however often it is added)."""
    if receiver not in _receivers:
        _receivers.append(receiver)


def receivers_run(event: SignedUp) -> None:
    for receiver in list(_receivers):
        receiver(event)
