"""Alerts by e-mail: the balance ran low or empty, or the period's allowance
is 80% / 95% spent.

`alerts_check` decides for one organization, under a lock on its alert rows,
and records what it sent in the same transaction; the mails (notification
kinds `alert_<kind>`, declared in billing.notifications) leave after commit.
Running it twice, or twice at once, sends nothing twice: the second run waits
for the first's lock and finds the alert already active (balance) or already
sent for this allowance period. Killed half-way, it rolls back and the next
run decides again.

* Balance alerts fire when their condition starts ("low" = available credits
  below the org's line, "empty" = nothing available), go quiet while it lasts,
  and re-arm when it ends. A cooldown (ALERT_COOLDOWN_HOURS) caps them at one
  per alert per window, so a balance hovering at the line does not flood
  anyone; a condition that starts during the cooldown is sent when it ends.
  They go to the people who can pay: owners, admins, billing managers.
* Allowance alerts fire once per allowance period at 80% and at 95% spent (a
  jump straight past 95% sends only the 95% one), to each member who has them
  on in their alert preferences (by default those who manage billing). They
  say the share actually used (98%, 100%), not the line that was crossed.
* No alert of either kind goes to an org that has never used credits (no
  usage entry in its ledger, nothing held): a new team with its Free 50
  credits is below the default low line, but nothing is running low.

`billing.receivers.alerts_when_running_low` queues `billing.alerts_check` after
commit when a ledger write takes the available balance across the low line or
to zero (the balance-change seam); a beat task
(`billing.alerts_sweep`) catches what no write triggered: allowance levels,
re-arming, alerts held back by the cooldown, a line moved by its owner.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from celery import current_app
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.db.models.functions import Cast
from django.utils import timezone

from billing import selectors
from billing.models import AlertKind, AlertPreference, AlertState
from billing.notifications import LINKS, alert_notification, allowance_alerts_on_by_default
from billing_project.errors import NotFound
from orgs.models import MANAGE_BILLING, Membership, Organization
from orgs.notifications import notification_send
from orgs.services import audit_record, role_require
from usage import selectors as usage_selectors
from usage import services as usage_services
from usage.units import format_credits

if TYPE_CHECKING:
    from accounts.models import User
    from orgs.services import Actor
    from usage.models import CreditAccount

ACTOR = "task:billing.alerts"
BALANCE_ALERTS = (AlertKind.LOW_BALANCE, AlertKind.DEPLETED)
ALLOWANCE_ALERTS = (AlertKind.ALLOWANCE_80, AlertKind.ALLOWANCE_95, AlertKind.ALLOWANCE_100)


def cooldown() -> timedelta:
    return timedelta(hours=settings.ALERT_COOLDOWN_HOURS)


def _lock_states(org_id: int) -> dict[str, AlertState]:
    """The org's alert rows, created if missing, locked in one order (no deadlocks)."""
    AlertState.objects.bulk_create(
        [AlertState(org_id=org_id, kind=kind) for kind in AlertKind.values], ignore_conflicts=True
    )
    rows = AlertState.objects.select_for_update().filter(org_id=org_id).order_by("kind")
    return {row.kind: row for row in rows}


@dataclass(frozen=True)
class Due:
    """An alert the check decided to send, and what its templates need."""

    kind: str
    context: dict[str, Any]


def alerts_check(*, org_id: int, now: datetime | None = None) -> list[str]:
    """Send the alerts the org's balance and allowance call for, once each. Returns the kinds sent."""
    now = now or timezone.now()
    with transaction.atomic():
        org = Organization.objects.filter(pk=org_id).first()
        account = usage_selectors.account_for(org_id)
        if org is None or account.pk is None:
            return []
        states = _lock_states(org_id)
        # An org that has used nothing yet (a new team before its first run) is
        # not running low, whatever its balance, and has spent none of its
        # allowance, whatever expired unspent: nothing to alarm anyone about.
        used = usage_selectors.account_has_used(account)
        was_low = states[AlertKind.LOW_BALANCE].active
        due = _balance_alerts(org, account, states, now, used=used)
        if was_low and not states[AlertKind.LOW_BALANCE].active:
            # Back above the line. The kind's cooldown keeps a balance that
            # dips in and out from telling people each time it climbs back.
            available = account.balance_micros - account.held_micros
            notification_send("balance_back", org=org, context={
                "available": format_credits(max(available, 0)), "link": LINKS["balance_back"],
            })
        if used:
            due += _allowance_alerts(org, states, now)
        for state in states.values():
            state.save()
        for alert in due:
            # Rendered now, mailed by the seam after commit: a rollback sends nothing.
            kind = alert_notification(alert.kind)
            sent = notification_send(kind, org=org, context={
                "cooldown_hours": settings.ALERT_COOLDOWN_HOURS, "link": LINKS[kind], **alert.context,
            })
            audit_record(org=org, action="billing.alert_sent", actor=ACTOR,
                         data={"alert": alert.kind, "recipients": len(sent.recipients) if sent else 0})
    return [alert.kind for alert in due]


def _balance_alerts(org: Organization, account: CreditAccount, states: dict[str, AlertState], now: datetime,
                    *, used: bool) -> list[Due]:
    available = account.balance_micros - account.held_micros
    line = usage_selectors.low_balance_micros(account.low_balance_threshold_micros)
    low, empty = states[AlertKind.LOW_BALANCE], states[AlertKind.DEPLETED]
    is_empty, is_low = used and available <= 0, used and available < line

    def due(state: AlertState) -> bool:
        return not state.active and (state.last_sent_at is None or now - state.last_sent_at >= cooldown())

    alerts = []
    context = {"available": format_credits(max(available, 0)), "line": format_credits(line),
               "auto_topup": selectors.auto_topup_status(org.pk)}
    if is_empty:
        if due(empty):
            alerts.append(Due(AlertKind.DEPLETED, context))
            empty.active, empty.last_sent_at = True, now
            # Empty is low too: one mail about it, not two.
            low.active = True
    else:
        empty.active = False
    if is_low and not is_empty and due(low):
        alerts.append(Due(AlertKind.LOW_BALANCE, context))
        low.active, low.last_sent_at = True, now
    if not is_low:
        low.active = False
    return alerts


def _allowance_alerts(org: Organization, states: dict[str, AlertState], now: datetime) -> list[Due]:
    allowance = selectors.allowance_for(org.pk, now=now)
    if allowance is None or allowance.amount_micros <= 0:
        return []
    reference = str(allowance.grant.pk)
    at_80, at_95 = states[AlertKind.ALLOWANCE_80], states[AlertKind.ALLOWANCE_95]
    at_100 = states[AlertKind.ALLOWANCE_100]
    used, amount = allowance.used_micros, allowance.amount_micros
    context = {"allowance": allowance, "used": format_credits(used), "amount": format_credits(amount),
               "left": format_credits(amount - used)}
    kind = None
    if used >= amount and at_100.reference != reference and at_95.reference == reference:
        # All of it, after the 95% alert went out. A jump from below 95% straight
        # to 100% is told once, by the 95% alert, which says "100%".
        kind = AlertKind.ALLOWANCE_100
        at_100.reference = reference
    elif used * 100 >= 95 * amount and at_95.reference != reference:
        kind = AlertKind.ALLOWANCE_95
        at_95.reference = at_80.reference = reference  # past 95% the 80% mail would be old news
        if used >= amount:
            at_100.reference = reference
    elif used * 100 >= 80 * amount and at_80.reference != reference and at_95.reference != reference:
        kind = AlertKind.ALLOWANCE_80
        at_80.reference = reference
    if kind is None:
        return []
    states[kind].last_sent_at = now
    # The share really used, rounded down: the 95% alert may go out at 100%
    # (a jump past the line), and "95%" would then understate it; rounding
    # down never claims more than is spent (99.96% says 99%, not 100%).
    return [Due(kind, {"percent": used * 100 // amount, **context})]


def alerts_sweep(*, now: datetime | None = None, limit: int = 1000) -> int:
    """Beat: check every org an alert could be due for. Returns how many were checked.

    Due: a balance under its line that is not alerted yet (no write crossed
    it, or the cooldown held it back), an alerted balance that recovered (to
    re-arm it), an allowance at 80% or 95% not yet alerted for its period."""
    now = now or timezone.now()
    below = usage_selectors.low_balances(limit=limit * 10)
    active: dict[int, set[str]] = {}
    for org_id, kind in AlertState.objects.filter(kind__in=BALANCE_ALERTS, active=True).values_list("org_id", "kind"):
        active.setdefault(org_id, set()).add(kind)
    due = set()
    for org_id, available in below.items():
        alerted = active.get(org_id, set())
        needed = AlertKind.DEPLETED if available <= 0 else AlertKind.LOW_BALANCE
        if needed not in alerted:
            due.add(org_id)
    due |= {org_id for org_id in active if org_id not in below}  # recovered: re-arm
    due |= set(_allowance_candidates(now)[:limit])
    for org_id in sorted(due)[:limit]:
        alerts_check(org_id=org_id, now=now)
    return min(len(due), limit)


def _allowance_candidates(now: datetime) -> QuerySet:
    """Orgs whose current allowance is 80% spent or more and not yet alerted at its level."""
    reference = Cast(OuterRef("grant_id"), output_field=AlertState._meta.get_field("reference"))
    sent_95 = AlertState.objects.filter(org_id=OuterRef("org_id"), kind=AlertKind.ALLOWANCE_95, reference=reference)
    sent_80 = AlertState.objects.filter(org_id=OuterRef("org_id"), kind=AlertKind.ALLOWANCE_80, reference=reference)
    sent_100 = AlertState.objects.filter(org_id=OuterRef("org_id"), kind=AlertKind.ALLOWANCE_100, reference=reference)
    return (
        usage_selectors.allowances_mostly_used(now=now)
        .exclude(Exists(sent_100))
        # below 100%: nothing to do once the 95% alert went out
        .exclude(Q(past_100=False) & Exists(sent_95))
        # between 80% and 95%: nothing to do once the 80% alert went out
        .exclude(Q(past_95=False) & Exists(sent_80))
        .values_list("org_id", flat=True)
        .distinct()
    )


# --- preferences ------------------------------------------------------------------


@transaction.atomic
def alert_threshold_set(*, org: Organization, threshold_micros: int | None, actor: Actor = None) -> None:
    """The org's low-balance line (None: the deployment's default). Billing roles only."""
    if isinstance(actor, get_user_model()):
        role_require(org=org, user=actor, roles=MANAGE_BILLING, action="change the low-balance alert")
    account = usage_services.account_open(org=org)
    previous = account.low_balance_threshold_micros
    usage_services.account_set_low_balance_threshold(org=org, threshold_micros=threshold_micros)
    audit_record(org=org, action="billing.alert_threshold_set", actor=actor, data={
        "threshold": format_credits(threshold_micros) if threshold_micros is not None else None,
        "previous": format_credits(previous) if previous is not None else None,
    })
    # A line moved above the balance is "low" now, though no write crossed it.
    # billing.tasks imports these services, so they queue its task by name
    # instead of importing it back; BillingConfig.ready() imports billing.tasks,
    # so the name resolves to the task (run eagerly in tests, queued otherwise).
    check = current_app.signature("billing.alerts_check", args=(org.pk,))
    transaction.on_commit(check.delay)


@transaction.atomic
def alert_preference_set(*, org: Organization, user: User, allowance_80: bool, allowance_95: bool) -> AlertPreference:
    """A person's own allowance alerts in an organization they belong to."""
    if not Membership.objects.filter(org=org, user=user).exists():
        raise NotFound("No such member.", code="member_not_found")
    pref, _ = AlertPreference.objects.update_or_create(
        org=org, user=user, defaults={"allowance_80": allowance_80, "allowance_95": allowance_95}
    )
    audit_record(org=org, action="billing.alert_preference_set", actor=user,
                 data={"allowance_80": allowance_80, "allowance_95": allowance_95})
    return pref


def alert_preference_for(org: Organization, user: User) -> AlertPreference:
    """The person's preference, or the default one (unsaved) if they never chose."""
    pref = AlertPreference.objects.filter(org=org, user=user).first()
    if pref is not None:
        return pref
    membership = Membership.objects.filter(org=org, user=user).first()
    default = membership is not None and allowance_alerts_on_by_default(membership.role)
    return AlertPreference(org=org, user=user, allowance_80=default, allowance_95=default)
