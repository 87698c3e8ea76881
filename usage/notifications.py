"""The messages the usage app sends to people, declared once. UsageConfig.ready()
registers them with the notification seam (orgs.notifications); their templates
are under templates/notifications/<name>/. The runaway breaker
(usage.services.runaway) sends the first two to those who pay and, by address,
to staff; a member whose own monthly cap refused a debit is told by
`member_cap_told`, a receiver on usage's own happenings seam."""

from __future__ import annotations

from orgs.models import MANAGE_BILLING, Membership, Role
from orgs.notifications import NotificationKind, notification_kind_register, notification_send
from usage import happenings

MEMBER_CAP_LINK = "/billing/usage/"

KINDS = (
    # An organization or API key spent far above its usual hourly rate.
    NotificationKind(name="usage_unusual", roles=MANAGE_BILLING, channels=("email", "in_app"), group="Usage",
                     label="Unusual usage"),
    # ... and the key was paused until an owner or admin resumes it.
    NotificationKind(name="usage_paused", roles=MANAGE_BILLING, channels=("email", "in_app"), group="Usage",
                     label="API key paused"),
    # Your own monthly spend cap in this organization stopped your usage: sent
    # to that member alone, once per month, whatever their role.
    NotificationKind(name="member_cap_reached", roles=Role.values, channels=("email", "in_app"), group="Usage",
                     label="My monthly spend cap reached"),
)


def member_cap_told(happening: happenings.Happening) -> None:
    """A member's cap refused a debit: tell that member, keyed like the platform's
    usage.limit_reached event (member and month), so the month's later refusals
    tell nobody again."""
    if happening.type != "usage.limit_reached" or happening.data.get("scope") != "member":
        return
    membership = (Membership.objects.select_related("org", "user")
                  .filter(org_id=happening.org_id, user_id=happening.data["member_id"]).first())
    if membership is None:
        return
    notification_send("member_cap_reached", org=membership.org, user=membership.user, key=happening.key,
                      context={**happening.data, "link": MEMBER_CAP_LINK})


def usage_kinds_register() -> None:
    for kind in KINDS:
        notification_kind_register(kind)
    happenings.receiver_register(member_cap_told)
