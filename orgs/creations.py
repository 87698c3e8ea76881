"""The organization-created seam: apps above orgs react to a new organization
without orgs knowing them (billing starts a team organization on Free, with
its allowance, so it never shows a plan it has not been given).

Receivers are registered once, in their app's `AppConfig.ready()`, and run in
registration order inside `orgs.services.org_create`'s transaction, after the
owner's membership exists: one that fails undoes the creation, so no
organization is left without what its receivers set up.

A personal organization is created by sign-up, whose own seam
(`accounts.signups`) runs next; receivers that set up billing leave personal
organizations to it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from orgs.models import Organization

if TYPE_CHECKING:
    # Users live in accounts, above orgs: orgs needs only what any Django user has.
    from django.contrib.auth.base_user import AbstractBaseUser as User


@dataclass(frozen=True)
class OrgCreated:
    org: Organization
    owner: User  # its first owner


OrgCreatedReceiver = Callable[[OrgCreated], None]

_receivers: list[OrgCreatedReceiver] = []


def receiver_add(receiver: OrgCreatedReceiver) -> None:
    """Run `receiver` for every new organization from now on (once, however often it is added)."""
    if receiver not in _receivers:
        _receivers.append(receiver)


def receivers_run(event: OrgCreated) -> None:
    for receiver in list(_receivers):
        receiver(event)
