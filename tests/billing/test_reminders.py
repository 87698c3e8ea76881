"""Reminders before a trial ends, a grace period ends and a plan renews: due at
the right moment, and told once however often (or wherever) the beat runs."""

import threading
from datetime import timedelta

import pytest
import time_machine
from django.core import mail
from django.db import connection
from django.utils import timezone

from billing import tasks
from billing.models import BillingState
from billing.services import reminders_due, reminders_send
from inbox.models import InboxItem
from outbound.models import Event
from tests.factories import MembershipFactory, OrganizationFactory, UserFactory

DAY = timedelta(days=1)


def state_of(org, **fields):
    BillingState.objects.update_or_create(org=org, defaults=fields)


def kinds_due(now):
    return sorted((r.kind, r.key.rsplit(":", 1)[-1]) for r in reminders_due(now=now))


@pytest.mark.django_db
def test_a_trial_is_reminded_3_days_and_1_day_before(org, owner):
    now = timezone.now()
    state_of(org, status="trialing", plan_code="starter", trial_ends_at=now + 3 * DAY - timedelta(minutes=5))

    assert kinds_due(now - DAY) == []
    assert kinds_due(now) == [("trial_ending", "3d")]
    assert kinds_due(now + 2 * DAY) == [("trial_ending", "1d")]
    assert kinds_due(now + 3 * DAY) == []  # ended


@pytest.mark.django_db
def test_a_grace_period_is_reminded_1_day_before(org, owner):
    now = timezone.now()
    state_of(org, status="past_due", plan_code="pro", grace_ends_at=now + 2 * DAY)

    assert kinds_due(now) == []
    assert [kind for kind, _ in kinds_due(now + DAY + timedelta(minutes=1))] == ["grace_ending"]


@pytest.mark.django_db
@pytest.mark.parametrize(("interval", "days"), [("year", 7), ("month", 3)])
def test_a_renewal_is_reminded_7_days_before_yearly_and_3_before_monthly(org, owner, interval, days):
    now = timezone.now()
    state_of(org, status="active", plan_code="pro", interval=interval, current_period_end=now + 10 * DAY)

    assert kinds_due(now + (10 - days) * DAY - timedelta(minutes=1)) == []
    assert [kind for kind, _ in kinds_due(now + (10 - days) * DAY + timedelta(minutes=1))] == ["renewal_coming"]


@pytest.mark.django_db
def test_a_renewal_that_will_not_happen_is_not_announced(org, owner):
    now = timezone.now()
    state_of(org, status="active", plan_code="pro", interval="month", current_period_end=now + DAY,
             cancel_at_period_end=True)

    assert kinds_due(now) == []


@pytest.mark.django_db
def test_the_task_run_twice_gives_one_notice(org, owner, django_capture_on_commit_callbacks):
    state_of(org, status="trialing", plan_code="starter", trial_ends_at=timezone.now() + 2 * DAY)
    with django_capture_on_commit_callbacks(execute=True):
        tasks.reminders_send.delay()
    with django_capture_on_commit_callbacks(execute=True):
        tasks.reminders_send.delay()

    assert [m.subject for m in mail.outbox] == ["[Tollgate] Acme: your trial ends in 3 days"]
    assert InboxItem.objects.filter(user=owner, kind="trial_ending").count() == 1


@pytest.mark.django_db
def test_each_mark_is_its_own_notice(org, owner, django_capture_on_commit_callbacks):
    with time_machine.travel(timezone.now(), tick=False) as clock:
        state_of(org, status="trialing", plan_code="starter", trial_ends_at=timezone.now() + 2 * DAY)
        with django_capture_on_commit_callbacks(execute=True):
            reminders_send()
        clock.shift(DAY + timedelta(minutes=15))
        with django_capture_on_commit_callbacks(execute=True):
            reminders_send()

    assert [m.subject for m in mail.outbox] == [
        "[Tollgate] Acme: your trial ends in 3 days", "[Tollgate] Acme: your trial ends tomorrow",
    ]


@pytest.mark.django_db(transaction=True)
def test_two_beat_processes_at_once_give_one_notice():
    org = OrganizationFactory(name="Acme")
    owner = MembershipFactory(org=org, role="owner", user=UserFactory(email="owner@acme.test")).user
    state_of(org, status="past_due", plan_code="pro", grace_ends_at=timezone.now() + DAY / 2)
    barrier = threading.Barrier(2)
    errors = []

    def beat() -> None:
        try:
            barrier.wait()
            reminders_send()
        except Exception as error:  # noqa: BLE001 - the test reports it
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=beat) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert errors == []
    assert len(mail.outbox) == 1
    assert InboxItem.objects.filter(user=owner, kind="grace_ending").count() == 1


@pytest.mark.django_db
def test_trial_and_grace_reminders_tell_the_platform_once_with_the_same_key(
    org, owner, django_capture_on_commit_callbacks
):
    ends = timezone.now() + 2 * DAY
    state_of(org, status="trialing", plan_code="starter", trial_ends_at=ends)
    for _ in range(2):
        with django_capture_on_commit_callbacks(execute=True):
            reminders_send()
    other = OrganizationFactory(slug="other")
    MembershipFactory(org=other, user=UserFactory(), role="owner")
    grace_ends = timezone.now() + DAY - timedelta(minutes=5)
    state_of(other, status="past_due", plan_code="pro", grace_ends_at=grace_ends)
    with django_capture_on_commit_callbacks(execute=True):
        reminders_send()

    trial = Event.objects.get(org=org)
    assert trial.type == "trial.ending" and trial.key.endswith(":3d")
    assert trial.payload["data"] == {"plan": "starter", "trial_ends_at": ends.isoformat(), "days_left": 3}
    grace = Event.objects.get(org=other)
    assert grace.type == "grace.ending"
    assert grace.payload["data"] == {"plan": "pro", "grace_ends_at": grace_ends.isoformat(), "days_left": 1}
