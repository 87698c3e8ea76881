"""The messages billing sends to people, declared once. BillingConfig.ready()
registers them with the notification seam (orgs.notifications); their
templates are under templates/notifications/<name>/."""

from __future__ import annotations

from billing.models import AlertKind, AlertPreference
from orgs.models import MANAGE_BILLING, Membership, Organization, Role
from orgs.notifications import NotificationKind, Wants, notification_kind_register


def alert_notification(alert: str) -> str:
    """The notification kind that tells people about an `AlertKind`."""
    return f"alert_{alert}"


def allowance_alerts_on_by_default(role: str) -> bool:
    """Whether a member who never chose gets the allowance alerts: those who manage billing."""
    return role in MANAGE_BILLING


def _wanted_by_preference(alert: str) -> Wants:
    """Members who want this allowance alert: their own choice, else the default for their role."""

    def wants(org: Organization, members: list[Membership]) -> list[Membership]:
        chosen = dict(AlertPreference.objects.filter(org=org).values_list("user_id", alert))
        return [m for m in members if chosen.get(m.user_id, allowance_alerts_on_by_default(m.role))]

    return wants


KINDS = (
    # Payment failed, downgraded, auto top-up stopped...: a subject and a message from the caller.
    NotificationKind(name="billing_notice", roles=MANAGE_BILLING),
    # The balance ran low or out: the people who can pay.
    NotificationKind(name=alert_notification(AlertKind.LOW_BALANCE), roles=MANAGE_BILLING),
    NotificationKind(name=alert_notification(AlertKind.DEPLETED), roles=MANAGE_BILLING),
    # The allowance is 80% / 95% used: any member may opt in or out.
    *(
        NotificationKind(name=alert_notification(alert), roles=Role.values, wants=_wanted_by_preference(alert))
        for alert in (AlertKind.ALLOWANCE_80, AlertKind.ALLOWANCE_95)
    ),
)


def billing_kinds_register() -> None:
    for kind in KINDS:
        notification_kind_register(kind)
