"""The messages billing sends to people, declared once. BillingConfig.ready()
registers them with the notification seam (orgs.notifications); their
templates are under templates/notifications/<name>/."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings

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


BOTH = ("email", "in_app")
PAYMENTS, BALANCE, USAGE = "Payments", "Balance", "Usage"

# Where each kind's one-click link goes: the page that fixes the problem.
LINKS = {
    "payment_failed": "/billing/invoices/",  # pay the open invoice or open the card portal
    "grace_ending": "/billing/invoices/",
    "renewal_coming": "/billing/plans/",
    "trial_ending": "/billing/plans/",
    "auto_topup_failed": "/billing/settings/auto-top-up/",
    "auto_topup_action_required": "/billing/top-up/",
    "balance_back": "/billing/",
    "purchase_receipt": "/billing/invoices/",
    # The alerts: top up when the balance runs low or out; see the usage or a
    # larger plan when the allowance runs out.
    alert_notification(AlertKind.LOW_BALANCE): "/billing/top-up/",
    alert_notification(AlertKind.DEPLETED): "/billing/top-up/",
    alert_notification(AlertKind.ALLOWANCE_80): "/billing/usage/",
    alert_notification(AlertKind.ALLOWANCE_95): "/billing/usage/",
    alert_notification(AlertKind.ALLOWANCE_100): "/billing/plans/",
}


def balance_cooldown() -> timedelta:
    """How long a flapping balance waits before it is told again (ALERT_COOLDOWN_HOURS)."""
    return timedelta(hours=settings.ALERT_COOLDOWN_HOURS)


KINDS = (
    # Downgraded, auto top-up cap reached, refunds...: a subject and a message from the caller.
    NotificationKind(name="billing_notice", roles=MANAGE_BILLING, channels=BOTH, label="Other billing notices",
                     group=PAYMENTS),
    NotificationKind(name="payment_failed", roles=MANAGE_BILLING, channels=BOTH, group=PAYMENTS),
    NotificationKind(name="grace_ending", roles=MANAGE_BILLING, channels=BOTH, group=PAYMENTS,
                     label="Grace period ending"),
    NotificationKind(name="renewal_coming", roles=MANAGE_BILLING, channels=BOTH, group=PAYMENTS,
                     label="Renewal coming"),
    NotificationKind(name="trial_ending", roles=MANAGE_BILLING, channels=BOTH, group=PAYMENTS),
    NotificationKind(name="purchase_receipt", roles=MANAGE_BILLING, channels=("email",), group=PAYMENTS,
                     label="Receipts for purchases"),
    NotificationKind(name="auto_topup_failed", roles=MANAGE_BILLING, channels=BOTH, group=BALANCE,
                     label="Auto top-up failed"),
    NotificationKind(name="auto_topup_action_required", roles=MANAGE_BILLING, channels=BOTH, group=BALANCE,
                     label="Auto top-up needs the card holder"),
    # The balance ran low or out (billing.services.alerts keeps their own cooldown) or came back:
    # the people who can pay.
    NotificationKind(name=alert_notification(AlertKind.LOW_BALANCE), roles=MANAGE_BILLING, channels=BOTH,
                     group=BALANCE, label="Balance low"),
    NotificationKind(name=alert_notification(AlertKind.DEPLETED), roles=MANAGE_BILLING, channels=BOTH,
                     group=BALANCE, label="Balance empty"),
    NotificationKind(name="balance_back", roles=MANAGE_BILLING, channels=BOTH, group=BALANCE,
                     label="Balance back", cooldown=balance_cooldown()),
    # The allowance is 80% / 95% / 100% used: any member may opt in or out. The alerts
    # page has a choice for 80% and 95%; whoever wants the 95% alert gets the 100% one.
    *(
        NotificationKind(name=alert_notification(alert), roles=Role.values, wants=_wanted_by_preference(preference),
                         channels=BOTH, group=USAGE, label=f"Allowance {percent} % used")
        for alert, preference, percent in (
            (AlertKind.ALLOWANCE_80, AlertKind.ALLOWANCE_80, 80),
            (AlertKind.ALLOWANCE_95, AlertKind.ALLOWANCE_95, 95),
            (AlertKind.ALLOWANCE_100, AlertKind.ALLOWANCE_95, 100),
        )
    ),
    # Reconciliation with Stripe found drift: sent to staff by address, never to customers.
    NotificationKind(name="stripe_drift", channels=("email",), preferences=False,
                     label="Drift between Stripe and the ledger"),
)


def billing_kinds_register() -> None:
    for kind in KINDS:
        notification_kind_register(kind)
