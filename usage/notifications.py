"""The messages the usage app sends to people, declared once. UsageConfig.ready()
registers them with the notification seam (orgs.notifications); their templates
are under templates/notifications/<name>/. The runaway breaker
(usage.services.runaway) sends both to those who pay and, by address, to staff."""

from __future__ import annotations

from orgs.models import MANAGE_BILLING
from orgs.notifications import NotificationKind, notification_kind_register

KINDS = (
    # An organization or API key spent far above its usual hourly rate.
    NotificationKind(name="usage_unusual", roles=MANAGE_BILLING, channels=("email", "in_app"), group="Usage",
                     label="Unusual usage"),
    # ... and the key was paused until an owner or admin resumes it.
    NotificationKind(name="usage_paused", roles=MANAGE_BILLING, channels=("email", "in_app"), group="Usage",
                     label="API key paused"),
)


def usage_kinds_register() -> None:
    for kind in KINDS:
        notification_kind_register(kind)
