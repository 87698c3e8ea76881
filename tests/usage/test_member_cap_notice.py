"""A member whose own monthly cap refuses a debit is told, once a month, by e-mail
and in the app; the owner is not (their preferences page lists the kind as theirs)."""

import pytest
import time_machine

from inbox.models import InboxItem
from orgs.notifications import notification_preference_set
from usage import services
from usage.errors import SpendLimitReached
from usage.models import GrantSource

C = 1_000_000


@pytest.fixture
def capped(org, owner, member):
    services.credits_grant(org=org, amount_micros=1000 * C, source=GrantSource.PURCHASE)
    services.member_limit_set(org=org, member=member, monthly_limit_micros=10 * C, actor=owner)
    return member


def test_a_member_is_told_once_a_month_that_their_cap_is_reached(
    org, owner, capped, debit_path, mailoutbox, django_capture_on_commit_callbacks
):
    with time_machine.travel("2026-03-10 12:00:00Z", tick=False) as traveller:
        with django_capture_on_commit_callbacks(execute=True):
            services.credits_debit(org=org, amount_micros=8 * C, idempotency_key="a", member=capped)
        for key in ("b", "c"):
            with django_capture_on_commit_callbacks(execute=True), pytest.raises(SpendLimitReached):
                services.credits_debit(org=org, amount_micros=5 * C, idempotency_key=key, member=capped)

        [mail] = mailoutbox
        assert mail.to == [capped.email] and mail.subject == "[Tollgate] Acme: your monthly spend cap is reached"
        assert "8 of 10 credits spent in 2026-03" in mail.body
        [item] = InboxItem.objects.filter(kind="member_cap_reached")
        assert item.user == capped and item.link == "/billing/usage/"

        traveller.move_to("2026-04-02 12:00:00Z")
        with django_capture_on_commit_callbacks(execute=True):
            services.credits_debit(org=org, amount_micros=8 * C, idempotency_key="d", member=capped)
        with django_capture_on_commit_callbacks(execute=True), pytest.raises(SpendLimitReached):
            services.credits_debit(org=org, amount_micros=5 * C, idempotency_key="e", member=capped)
    assert [m.to for m in mailoutbox] == [[capped.email]] * 2


def test_a_member_who_turned_the_mail_off_is_told_in_the_app_only(
    org, capped, mailoutbox, django_capture_on_commit_callbacks
):
    notification_preference_set(user=capped, org=org, kind="member_cap_reached", channel="email", enabled=False)
    with django_capture_on_commit_callbacks(execute=True), pytest.raises(SpendLimitReached):
        services.credits_debit(org=org, amount_micros=11 * C, idempotency_key="a", member=capped)

    assert mailoutbox == []
    assert InboxItem.objects.filter(user=capped, kind="member_cap_reached").count() == 1
