from datetime import timedelta

import pytest
import time_machine
from django.core import mail
from django.utils import timezone

from accounts import services as account_services
from billing import services, tasks
from billing.models import BillingState, BillingStatus
from tests.billing.helpers import C
from usage.models import CreditAccount, Grant, GrantSource

pytestmark = pytest.mark.django_db


def signup(email="new@example.test"):
    user = account_services.user_signup(email=email, password="correct horse battery")
    return user, user.memberships.get().org


def test_sign_up_starts_a_seven_day_starter_trial_without_a_card(catalog):
    with time_machine.travel(timezone.now(), tick=False):
        _user, org = signup()

        state = BillingState.objects.get(org=org)
        assert (state.plan_code, state.status, state.customer_id) == ("starter", BillingStatus.TRIALING, None)
        assert state.trial_ends_at == timezone.now() + timedelta(days=7)
        trial = Grant.objects.get(account__org=org, source=GrantSource.TRIAL)
        assert (trial.amount_micros, trial.expires_at) == (250 * C, state.trial_ends_at)
        assert CreditAccount.objects.get(org=org).plan_code == "starter"


def test_a_trial_is_given_once(catalog):
    _user, org = signup()
    services.trial_start(org=org)

    assert Grant.objects.filter(account__org=org, source=GrantSource.TRIAL).count() == 1


def test_at_the_trials_end_the_org_falls_to_free(catalog, django_capture_on_commit_callbacks):
    with time_machine.travel(timezone.now(), tick=False) as clock:
        _user, org = signup()
        clock.shift(timedelta(days=7, seconds=1))
        with django_capture_on_commit_callbacks(execute=True):
            assert tasks.trials_end.delay().get() == 1
        assert services.trials_end() == 0

        state = BillingState.objects.get(org=org)
        assert (state.plan_code, state.status) == ("free", BillingStatus.FREE)
        account = CreditAccount.objects.get(org=org)
        assert account.plan_code == "free"
        # the trial credits expired; Free's monthly allowance is what is left
        assert account.balance_micros == 50 * C
        assert Grant.objects.get(account__org=org, source=GrantSource.TRIAL).remaining_micros == 0
        assert any("trial has ended" in m.subject.lower() for m in mail.outbox)


def test_free_renews_its_allowance_each_month(catalog):
    with time_machine.travel(timezone.now(), tick=False) as clock:
        _user, org = signup()
        clock.shift(timedelta(days=7, seconds=1))
        services.trials_end()
        first_end = BillingState.objects.get(org=org).current_period_end

        clock.move_to(first_end + timedelta(seconds=1))
        assert services.free_periods_renew() == 1
        assert services.free_periods_renew() == 0

        state = BillingState.objects.get(org=org)
        assert state.current_period_start == first_end
        allowances = Grant.objects.filter(account__org=org, source=GrantSource.PLAN_ALLOWANCE).order_by("id")
        assert [g.remaining_micros for g in allowances] == [0, 50 * C]


def test_an_org_made_later_starts_on_free(catalog, other_org):
    services.free_periods_renew()

    state = BillingState.objects.get(org=other_org)
    assert (state.plan_code, state.status) == ("free", BillingStatus.FREE)
    assert CreditAccount.objects.get(org=other_org).balance_micros == 50 * C
