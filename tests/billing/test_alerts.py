"""Alerts by e-mail: low and empty balance (with a cooldown), and 80% / 95% of
the period's allowance (once per period), each sent once however often the
check runs."""

from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone

from billing import services
from billing.models import AlertKind, AlertState
from inbox.models import InboxItem
from orgs.models import AuditEvent, Role
from tests.billing.helpers import C, grant, spend
from tests.factories import MembershipFactory, UserFactory
from usage import selectors as usage_selectors
from usage.models import GrantSource

pytestmark = pytest.mark.django_db


@pytest.fixture
def billing_manager(org):
    return MembershipFactory(org=org, role=Role.BILLING, user=UserFactory(email="billing@acme.test")).user


@pytest.fixture
def low_line(settings):
    settings.LOW_BALANCE_CREDITS = "100"
    settings.ALERT_COOLDOWN_HOURS = 24


@pytest.fixture
def sweep(django_capture_on_commit_callbacks):
    """The beat task, with its after-commit mails delivered."""
    def run():
        with django_capture_on_commit_callbacks(execute=True):
            return services.alerts_sweep()
    return run


@pytest.fixture
def check(django_capture_on_commit_callbacks):
    def run(org):
        with django_capture_on_commit_callbacks(execute=True):
            return services.alerts_check(org_id=org.pk)
    return run


def subjects(mailoutbox) -> list[str]:
    return [m.subject for m in mailoutbox]


def test_a_debit_that_crosses_the_low_line_mails_the_people_who_pay(
        low_line, org, owner, member, billing_manager, mailoutbox, django_capture_on_commit_callbacks):
    grant(org, 150)
    with django_capture_on_commit_callbacks(execute=True):
        spend(org, 40, "u1")  # 110 left: still fine
    assert mailoutbox == []

    with django_capture_on_commit_callbacks(execute=True):
        spend(org, 20, "u2")  # 90 left: low

    assert subjects(mailoutbox) == ["[Tollgate] Acme: your balance is running low"] * 2
    assert sorted(m.to[0] for m in mailoutbox) == ["billing@acme.test", "owner@acme.test"]  # not the member
    body = mailoutbox[0].body
    assert "90 credits are left to spend, below the 100-credit alert line" in body
    assert "http://testserver/billing/top-up/" in body
    assert AuditEvent.objects.filter(org=org, action="billing.alert_sent", data__alert="low_balance").count() == 1
    # In the app too, one click from the page that fixes it.
    assert InboxItem.objects.get(user=owner, kind="alert_low_balance").link == "/billing/top-up/"


def test_staying_low_sends_nothing_more_and_running_out_sends_the_empty_alert(
        low_line, org, owner, mailoutbox, django_capture_on_commit_callbacks, sweep, check):
    grant(org, 150)
    with django_capture_on_commit_callbacks(execute=True):
        spend(org, 60, "u1")
        spend(org, 10, "u2")
        spend(org, 10, "u3")
    assert len(mailoutbox) == 1

    with django_capture_on_commit_callbacks(execute=True):
        spend(org, 70, "u4")  # 0 left

    assert subjects(mailoutbox)[-1] == "[Tollgate] Acme: your balance is empty"
    assert len(mailoutbox) == 2
    check(org)
    sweep()
    assert len(mailoutbox) == 2


def test_a_balance_that_goes_straight_to_empty_gets_one_mail(low_line, org, owner, mailoutbox,
                                                             django_capture_on_commit_callbacks):
    grant(org, 150)
    with django_capture_on_commit_callbacks(execute=True):
        spend(org, 150, "all")

    assert subjects(mailoutbox) == ["[Tollgate] Acme: your balance is empty"]


def test_the_cooldown_holds_back_a_second_dip_until_it_is_over(low_line, org, owner, mailoutbox,
                                                               django_capture_on_commit_callbacks, sweep):
    start = timezone.now()
    with time_machine.travel(start, tick=False):
        grant(org, 150)
        with django_capture_on_commit_callbacks(execute=True):
            spend(org, 60, "u1")  # low: alerted
        assert len(mailoutbox) == 1
    with time_machine.travel(start + timedelta(hours=2), tick=False):
        grant(org, 500)  # back above the line
        sweep()  # re-arms the alert
        assert AlertState.objects.get(org=org, kind=AlertKind.LOW_BALANCE).active is False
        with django_capture_on_commit_callbacks(execute=True):
            spend(org, 520, "u2")  # 70 left: low again, inside the cooldown
        sweep()
        assert low_mails(mailoutbox) == 1
    with time_machine.travel(start + timedelta(hours=24, minutes=1), tick=False):
        sweep()
        sweep()

    assert subjects(mailoutbox) == [
        "[Tollgate] Acme: your balance is running low",
        "[Tollgate] Acme: your balance is back",  # once: the second climb is within its cooldown
        "[Tollgate] Acme: your balance is running low",
    ]


def low_mails(mailoutbox) -> int:
    return sum("running low" in subject for subject in subjects(mailoutbox))


def test_a_balance_back_above_the_line_says_so_once_within_the_cooldown(
        low_line, org, owner, mailoutbox, django_capture_on_commit_callbacks, sweep):
    start = timezone.now()
    with time_machine.travel(start, tick=False) as clock:
        grant(org, 150)
        with django_capture_on_commit_callbacks(execute=True):
            spend(org, 60, "u1")  # low
        grant(org, 500)
        sweep()  # back
        with django_capture_on_commit_callbacks(execute=True):
            spend(org, 520, "u2")  # low again (within the low alert's cooldown: no mail)
        grant(org, 500)
        sweep()  # back again, within balance_back's cooldown
        clock.shift(timedelta(hours=24, minutes=1))
        with django_capture_on_commit_callbacks(execute=True):
            spend(org, 560, "u3")
        sweep()  # low, after the cooldown
        grant(org, 500)
        sweep()

    assert [s.rsplit(": ", 1)[1] for s in subjects(mailoutbox)] == [
        "your balance is running low", "your balance is back",
        "your balance is running low", "your balance is back",
    ]


def test_running_the_check_twice_sends_once(low_line, org, owner, mailoutbox, check):
    grant(org, 60)
    spend(org, 10, "first-use")  # low already; no write crossed the line since the grant only raised it

    assert check(org) == ["low_balance"]
    assert check(org) == []
    assert len(mailoutbox) == 1


def test_the_orgs_own_line_decides_what_is_low_everywhere(low_line, client, org, owner, mailoutbox, api,
                                                          django_capture_on_commit_callbacks):
    grant(org, 400)
    spend(org, 1, "first-use")
    assert usage_selectors.balance_summary(org).status == "ok"

    with django_capture_on_commit_callbacks(execute=True):
        services.alert_threshold_set(org=org, threshold_micros=500 * C, actor=owner)

    assert usage_selectors.balance_summary(org).status == "low"
    assert api.get("/api/v1/balance").json()["status"] == "low"
    client.force_login(owner)
    page = client.get("/billing/").content.decode()
    assert 'data-status="low"' in page and "below the 500-credit alert line" in page
    assert subjects(mailoutbox) == ["[Tollgate] Acme: your balance is running low"]  # checked when the line moved
    assert "below the 500-credit alert line" in mailoutbox[0].body


def test_only_billing_roles_move_the_line(org, member):
    from billing_project.errors import PermissionDenied

    with pytest.raises(PermissionDenied):
        services.alert_threshold_set(org=org, threshold_micros=10 * C, actor=member)


# --- allowance ----------------------------------------------------------------


@pytest.fixture
def on_trial(catalog, org, owner):
    """Starter's sign-up trial: 250 credits for 7 days, spent first; and bought
    credits behind them, so the balance never runs low in these tests."""
    services.trial_start(org=org)
    grant(org, 1000, GrantSource.PURCHASE)
    return org


def test_80_and_95_percent_of_the_allowance_are_each_sent_once(on_trial, org, owner, member, billing_manager,
                                                               mailoutbox, sweep, check):
    spend(org, 199, "a")  # 79.6%
    sweep()
    assert mailoutbox == []

    spend(org, 1, "b")  # 80%
    sweep()
    sweep()
    assert subjects(mailoutbox) == ["[Tollgate] Acme: 80% of your starter trial is used"] * 2
    assert sorted(m.to[0] for m in mailoutbox) == ["billing@acme.test", "owner@acme.test"]
    assert "200 of 250 credits, 50 left" in mailoutbox[0].body

    spend(org, 38, "c")  # 95.2%
    sweep()
    check(org)
    assert subjects(mailoutbox)[2:] == ["[Tollgate] Acme: 95% of your starter trial is used"] * 2
    assert len(mailoutbox) == 4


def test_a_jump_past_95_percent_sends_only_the_95_percent_alert(on_trial, org, owner, mailoutbox, sweep):
    spend(org, 245, "a")

    sweep()
    sweep()

    assert subjects(mailoutbox) == ["[Tollgate] Acme: 98% of your starter trial is used"]


def test_all_of_the_allowance_used_after_95_percent_is_told_once_more(on_trial, org, owner, mailoutbox, sweep,
                                                                     check):
    spend(org, 240, "a")  # 96%
    sweep()
    spend(org, 10, "b")  # 100%
    sweep()
    sweep()
    check(org)

    assert subjects(mailoutbox) == [
        "[Tollgate] Acme: 96% of your starter trial is used", "[Tollgate] Acme: 100% of your starter trial is used",
    ]
    assert AlertState.objects.get(org=org, kind=AlertKind.ALLOWANCE_100).last_sent_at is not None


def test_the_allowance_alert_says_how_much_is_really_used(on_trial, org, owner, mailoutbox, sweep):
    spend(org, 250, "all")  # the whole trial, in one go

    sweep()

    assert subjects(mailoutbox) == ["[Tollgate] Acme: 100% of your starter trial is used"]
    body, html = mailoutbox[0].body, mailoutbox[0].alternatives[0][0]
    assert "100% of Acme's starter trial is used: 250 of 250 credits, 0 left" in body
    assert "95%" not in body and "<strong>100%</strong>" in html


def test_the_percentage_is_rounded_down_so_it_never_claims_more_than_is_used(on_trial, org, owner, mailoutbox, sweep):
    spend(org, 249.9, "nearly")  # 99.96%: not all of it

    sweep()

    assert subjects(mailoutbox) == ["[Tollgate] Acme: 99% of your starter trial is used"]


def test_people_choose_their_own_allowance_alerts(on_trial, org, owner, member, mailoutbox, sweep):
    services.alert_preference_set(org=org, user=owner, allowance_80=False, allowance_95=True)
    services.alert_preference_set(org=org, user=member, allowance_80=True, allowance_95=False)

    spend(org, 210, "a")  # 84%
    sweep()
    assert [m.to for m in mailoutbox] == [["member@acme.test"]]

    spend(org, 30, "b")  # 96%
    sweep()
    assert [m.to for m in mailoutbox][1:] == [["owner@acme.test"]]


def test_a_new_allowance_period_alerts_again(catalog, org, owner, mailoutbox, sweep):
    from billing.services.subscriptions import plan_simulate_subscribe
    from tests.billing.helpers import plan_price

    plan_simulate_subscribe(org=org, plan_price=plan_price("starter"))  # 1,000 credits
    spend(org, 850, "a")
    sweep()
    assert subjects(mailoutbox) == ["[Tollgate] Acme: 85% of your starter allowance is used"]  # 850 of 1,000

    with time_machine.travel(timezone.now() + timedelta(seconds=2)):
        plan_simulate_subscribe(org=org, plan_price=plan_price("pro"))  # a new period, 10,000 credits
        spend(org, 9_600, "b")
        sweep()

    assert subjects(mailoutbox)[1:] == ["[Tollgate] Acme: 96% of your pro allowance is used"]  # 9,600 of 10,000


def test_the_sweep_leaves_orgs_with_nothing_due_alone(low_line, on_trial, org, owner, mailoutbox, sweep):
    grant(org, 1000, GrantSource.PURCHASE)

    assert sweep() == 0
    assert mailoutbox == []
