"""Reminders before a date: a trial ending (3 days and 1 day before), a grace
period ending (1 day before), a plan renewing (7 days before a yearly renewal,
3 before a monthly one).

The beat task runs every 15 minutes and finds every reminder due; each one's
key names its occurrence (the org, the date it is about, which reminder), so
running the task twice, or in two beat processes at once, tells people once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone

from billing.models import BillingState, BillingStatus, Interval
from billing.notifications import LINKS
from orgs.models import Organization
from orgs.notifications import notification_send
from outbound.services import event_send

DAY = timedelta(days=1)
TRIAL_MARKS = (3, 1)  # days before a trial ends
RENEWAL_DAYS = {Interval.YEAR: 7, Interval.MONTH: 3}


@dataclass(frozen=True)
class Reminder:
    org_id: int
    kind: str  # a notification kind: trial_ending, grace_ending, renewal_coming
    key: str  # stable per occurrence: "trial_ending:<org>:<trial end ISO>:3d"
    context: dict[str, Any] = field(default_factory=dict)
    # The platform's signed event for the same occurrence, when it has one
    # (trial.ending, grace.ending): its type and data, sent with the same key.
    event: str = ""
    event_data: dict[str, Any] = field(default_factory=dict)


def reminders_due(*, now: datetime | None = None) -> list[Reminder]:
    """Every reminder whose moment has come and whose date is still ahead."""
    now = now or timezone.now()
    due: list[Reminder] = []
    trials = BillingState.objects.filter(
        status=BillingStatus.TRIALING, trial_ends_at__gt=now, trial_ends_at__lte=now + TRIAL_MARKS[0] * DAY
    )
    for state in trials:
        # The nearest mark not yet passed: 3 days out until 1 day is left, then 1 day.
        days = min(mark for mark in TRIAL_MARKS if state.trial_ends_at <= now + mark * DAY)
        due.append(Reminder(
            org_id=state.org_id, kind="trial_ending",
            key=f"trial_ending:{state.org_id}:{state.trial_ends_at.isoformat()}:{days}d",
            context={"trial_ends_at": state.trial_ends_at, "days_left": days, "plan_name": state.plan_code.title(),
                     "link": LINKS["trial_ending"]},
            event="trial.ending",
            event_data={"plan": state.plan_code, "trial_ends_at": state.trial_ends_at.isoformat(), "days_left": days},
        ))
    graces = BillingState.objects.filter(
        status=BillingStatus.PAST_DUE, grace_ends_at__gt=now, grace_ends_at__lte=now + DAY
    )
    for state in graces:
        due.append(Reminder(
            org_id=state.org_id, kind="grace_ending",
            key=f"grace_ending:{state.org_id}:{state.grace_ends_at.isoformat()}:1d",
            context={"grace_ends_at": state.grace_ends_at, "link": LINKS["grace_ending"]},
            event="grace.ending",
            event_data={"plan": state.plan_code, "grace_ends_at": state.grace_ends_at.isoformat(), "days_left": 1},
        ))
    for interval, days in RENEWAL_DAYS.items():
        renewals = BillingState.objects.filter(
            status=BillingStatus.ACTIVE, interval=interval, cancel_at_period_end=False,
            current_period_end__gt=now, current_period_end__lte=now + days * DAY,
        )
        for state in renewals:
            due.append(Reminder(
                org_id=state.org_id, kind="renewal_coming",
                key=f"renewal_coming:{state.org_id}:{state.current_period_end.isoformat()}",
                context={"renews_at": state.current_period_end, "plan_name": state.plan_code.title(),
                         "interval_label": Interval(interval).label.lower(), "link": LINKS["renewal_coming"]},
            ))
    return due


def reminder_send(reminder: Reminder) -> None:
    """Tell the org's people and its platform, once per key (the seam's occurrence
    row, the event's unique key), in one transaction."""
    with transaction.atomic():
        org = Organization.objects.get(pk=reminder.org_id)
        notification_send(reminder.kind, org=org, key=reminder.key, context=reminder.context)
        if reminder.event:
            event_send(org_id=reminder.org_id, type=reminder.event, data=reminder.event_data, key=reminder.key)


def reminders_send(*, now: datetime | None = None) -> int:
    """Beat: send every reminder due. Returns how many were due (sent now or before)."""
    due = reminders_due(now=now)
    for reminder in due:
        reminder_send(reminder)
    return len(due)
