"""A new organization's first minutes: a team org starts on Free with its
allowance already there, a personal one with the sign-up trial only, and
neither is told its balance is low or empty before it has used anything."""

from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone

from accounts import services as account_services
from billing import selectors, services
from billing.models import AllowancePeriod, BillingStatus
from orgs import services as org_services
from tests.billing.helpers import C, balance, spend, state_of
from tests.factories import UserFactory
from usage import services as usage_services
from usage.models import Grant, GrantSource

pytestmark = pytest.mark.django_db


@pytest.fixture
def sweep(django_capture_on_commit_callbacks):
    def run():
        with django_capture_on_commit_callbacks(execute=True):
            return services.alerts_sweep()
    return run


def test_a_new_team_org_has_its_free_allowance_at_once(catalog):
    founder = account_services.user_signup(email="founder@team.test", password="a long enough secret")

    team = org_services.org_create(name="Team", owner=founder)

    state = state_of(team)
    assert (state.status, state.plan_code) == (BillingStatus.FREE, "free")
    assert balance(team) == 50 * C
    period = AllowancePeriod.objects.get(org=team)
    assert period.grant.expires_at == state.current_period_end > timezone.now()
    assert selectors.allowance_for(team.pk).amount_micros == 50 * C


def test_a_personal_org_gets_the_sign_up_trial_and_not_free_as_well(catalog):
    user = account_services.user_signup(email="solo@person.test", password="a long enough secret")
    personal = user.memberships.get().org

    assert state_of(personal).status == BillingStatus.TRIALING
    assert list(Grant.objects.filter(account__org=personal).values_list("source", "amount_micros")) == [
        (GrantSource.TRIAL, 250 * C)]
    assert not AllowancePeriod.objects.filter(org=personal).exists()


def test_the_hourly_renewal_does_not_grant_a_new_org_twice(catalog):
    team = org_services.org_create(name="Team", owner=UserFactory())

    services.free_periods_renew()
    with time_machine.travel(timezone.now() + timedelta(hours=1)):
        services.free_periods_renew()

    assert balance(team) == 50 * C
    assert AllowancePeriod.objects.filter(org=team).count() == 1


def test_an_org_that_has_used_nothing_is_never_told_its_balance_is_low_or_empty(catalog, mailoutbox, sweep):
    founder = UserFactory(email="founder@team.test")
    team = org_services.org_create(name="Team", owner=founder)  # 50 credits: under the default line of 100
    empty = org_services.org_create(name="Empty", owner=founder)
    for org in (team, empty):
        services.billing_state_for(org)  # what the first page view or the hourly renewal does
    for grant in Grant.objects.filter(account__org=empty):
        usage_services.grant_expire_now(grant=grant, reason="test: nothing left", actor="test")
    assert balance(empty) == 0

    sweep()
    services.alerts_check(org_id=team.pk)
    services.alerts_check(org_id=empty.pk)

    assert [m.subject for m in mailoutbox] == []


def test_once_it_has_used_credits_the_balance_alerts_apply(catalog, mailoutbox, sweep):
    team = org_services.org_create(name="Team", owner=UserFactory(email="founder@team.test"))

    spend(team, 1, "first-use")
    sweep()

    assert [m.subject for m in mailoutbox] == ["[Tollgate] Team: your balance is running low"]


def test_a_trial_started_on_a_team_org_replaces_its_free_allowance(catalog):
    team = org_services.org_create(name="Team", owner=UserFactory())
    free_grant = AllowancePeriod.objects.get(org=team).grant

    services.trial_start(org=team, actor="test")

    free_grant.refresh_from_db()
    assert free_grant.remaining_micros == 0
    assert state_of(team).status == BillingStatus.TRIALING
    assert balance(team) == 250 * C
