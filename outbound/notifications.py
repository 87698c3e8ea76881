"""The messages outbound sends to people, registered by OutboundConfig.ready()."""

from __future__ import annotations

from orgs.models import Role
from orgs.notifications import NotificationKind, notification_kind_register

ENDPOINT_DISABLED = "webhook_endpoint_disabled"

KINDS = (
    # An endpoint failed for three days and was disabled: the people who manage it.
    NotificationKind(name=ENDPOINT_DISABLED, roles=frozenset({Role.OWNER, Role.ADMIN})),
)


def outbound_kinds_register() -> None:
    for kind in KINDS:
        notification_kind_register(kind)
