"""Occurrence keys, cooldowns and people's preferences in the notification seam,
with billing's real kinds and both real channels (e-mail, in-app)."""

import threading
import time
from datetime import timedelta

import pytest
import time_machine
from django.core import mail
from django.db import connection, transaction
from django.utils import timezone

from inbox.models import InboxItem
from orgs.models import NotificationOccurrence, NotificationPreference, Role
from orgs.notifications import (
    notification_default,
    notification_kind_get,
    notification_preference_set,
    notification_send,
)
from tests.factories import MembershipFactory, OrganizationFactory, UserFactory

TRIAL = {"trial_ends_at": timezone.now(), "days_left": 3, "plan_name": "Starter", "link": "/billing/plans/"}


def send(kind="trial_ending", *, org, key=None, context=TRIAL, capture):
    with capture(execute=True):
        return notification_send(kind, org=org, key=key, context=context)


@pytest.mark.django_db
def test_it_sends_a_keyed_occurrence_once(org, owner, django_capture_on_commit_callbacks):
    first = send(org=org, key="trial_ending:1:x:3d", capture=django_capture_on_commit_callbacks)
    again = send(org=org, key="trial_ending:1:x:3d", capture=django_capture_on_commit_callbacks)

    assert first is not None and again is None
    assert len(mail.outbox) == 1 and InboxItem.objects.filter(user=owner).count() == 1


@pytest.mark.django_db
def test_another_key_is_another_occurrence(org, owner, django_capture_on_commit_callbacks):
    send(org=org, key="a", capture=django_capture_on_commit_callbacks)
    send(org=org, key="b", capture=django_capture_on_commit_callbacks)

    assert len(mail.outbox) == 2


@pytest.mark.django_db
def test_a_rolled_back_send_leaves_the_occurrence_free(org, owner):
    with pytest.raises(RuntimeError), transaction.atomic():
        notification_send("trial_ending", org=org, key="k", context=TRIAL)
        raise RuntimeError("the caller failed")

    assert not NotificationOccurrence.objects.exists() and mail.outbox == []


@pytest.mark.django_db(transaction=True)
def test_two_processes_sending_one_occurrence_at_once_tell_people_once():
    org = OrganizationFactory()
    MembershipFactory(org=org, role=Role.OWNER, user=UserFactory(email="owner@acme.test"))
    barrier = threading.Barrier(2)
    results = []

    def beat() -> None:
        try:
            barrier.wait()
            with transaction.atomic():
                sent = notification_send("trial_ending", org=org, key="trial_ending:same", context=TRIAL)
                time.sleep(0.2)  # hold the row while the other process tries to insert it
            results.append(sent is not None)
        finally:
            connection.close()

    threads = [threading.Thread(target=beat) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert sorted(results) == [False, True]
    assert len(mail.outbox) == 1
    assert InboxItem.objects.count() == 1
    assert NotificationOccurrence.objects.count() == 1


@pytest.mark.django_db
def test_a_flapping_balance_is_not_told_again_within_the_cooldown(org, owner, django_capture_on_commit_callbacks):
    context = {"available": "500", "link": "/billing/"}
    cooldown = notification_kind_get("balance_back").cooldown
    with time_machine.travel(timezone.now(), tick=False) as clock:
        send("balance_back", org=org, context=context, capture=django_capture_on_commit_callbacks)
        clock.shift(cooldown - timedelta(minutes=1))
        assert send("balance_back", org=org, context=context, capture=django_capture_on_commit_callbacks) is None
        clock.shift(timedelta(minutes=2))
        send("balance_back", org=org, context=context, capture=django_capture_on_commit_callbacks)

    assert len(mail.outbox) == 2


@pytest.mark.django_db
def test_the_cooldown_is_per_organization(org, owner, other_org, django_capture_on_commit_callbacks):
    context = {"available": "500", "link": "/billing/"}
    send("balance_back", org=org, context=context, capture=django_capture_on_commit_callbacks)
    send("balance_back", org=other_org, context=context, capture=django_capture_on_commit_callbacks)

    assert sorted(m.to[0] for m in mail.outbox) == ["owner@acme.test", "owner@globex.test"]


# --- defaults by role, and preferences -----------------------------------------


@pytest.mark.django_db
def test_those_who_pay_get_payment_messages_and_members_do_not(org, owner, member, django_capture_on_commit_callbacks):
    billing = MembershipFactory(org=org, role=Role.BILLING, user=UserFactory(email="billing@acme.test")).user
    send(org=org, capture=django_capture_on_commit_callbacks)

    assert sorted(m.to[0] for m in mail.outbox) == ["billing@acme.test", "owner@acme.test"]
    assert set(InboxItem.objects.values_list("user", flat=True)) == {owner.pk, billing.pk}
    kind = notification_kind_get("trial_ending")
    assert [notification_default(kind, m) for m in org.memberships.order_by("role")] == [True, False, True]


@pytest.mark.django_db
def test_a_preference_turned_off_stops_that_channel_only(org, owner, django_capture_on_commit_callbacks):
    notification_preference_set(user=owner, org=org, kind="trial_ending", channel="email", enabled=False)
    send(org=org, capture=django_capture_on_commit_callbacks)

    assert mail.outbox == []
    assert InboxItem.objects.filter(user=owner, kind="trial_ending").count() == 1


@pytest.mark.django_db
def test_a_member_may_turn_on_what_their_role_does_not_get(org, owner, member, django_capture_on_commit_callbacks):
    notification_preference_set(user=member, org=org, kind="trial_ending", channel="in_app", enabled=True)
    send(org=org, capture=django_capture_on_commit_callbacks)

    assert [m.to[0] for m in mail.outbox] == ["owner@acme.test"]
    assert InboxItem.objects.filter(user=member).count() == 1


@pytest.mark.django_db
def test_a_preference_in_one_org_leaves_another_alone(org, owner, other_org, django_capture_on_commit_callbacks):
    MembershipFactory(org=other_org, user=owner, role=Role.OWNER)
    notification_preference_set(user=owner, org=other_org, kind="trial_ending", channel="email", enabled=False)
    send(org=org, capture=django_capture_on_commit_callbacks)

    assert "owner@acme.test" in [m.to[0] for m in mail.outbox]


@pytest.mark.django_db
def test_forgetting_a_preference_returns_to_the_default(org, owner):
    notification_preference_set(user=owner, org=org, kind="trial_ending", channel="email", enabled=False)
    notification_preference_set(user=owner, org=org, kind="trial_ending", channel="email", enabled=None)

    assert not NotificationPreference.objects.exists()
