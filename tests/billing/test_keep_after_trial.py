"""Keeping the trial's plan: the subscription starts now but billing starts
when the trial ends (Stripe's trial_end), and the trial's credits stay."""

from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone

from billing import services
from billing.models import AllowancePeriod, BillingStatus
from tests.billing import stripe_builders as b
from tests.billing.helpers import C, balance, invoice_for, state_of, subscription_for
from usage.models import Grant, GrantSource

pytestmark = pytest.mark.django_db


def test_keeping_starter_during_the_trial_bills_from_the_trials_end_and_keeps_its_credits(
        webhooks, fake_stripe, org, owner):
    services.trial_start(org=org, actor=owner)
    ends = state_of(org).trial_ends_at

    services.checkout_start(org=org, kind="plan", code="starter", actor=owner)

    params = fake_stripe.created["checkout.session.params"][-1]
    assert params["mode"] == "subscription"
    assert int(params["subscription_data"]["trial_end"]) == int(ends.timestamp())

    # Stripe starts the subscription in its trial, with a $0 invoice for it.
    trial_end = int(ends.timestamp())
    sub = subscription_for(fake_stripe, org, "starter", status="trialing", period_end=trial_end,
                           trial_start=b.now(), trial_end=trial_end)
    webhooks.send("customer.subscription.created", sub)
    webhooks.send("invoice.paid", invoice_for(fake_stripe, sub, billing_reason="subscription_create",
                                              amount_due=0, amount_paid=0, total=0, subtotal=0))

    state = state_of(org)
    assert (state.status, state.plan_code, state.subscription_id) == (BillingStatus.TRIALING, "starter", sub["id"])
    trial = Grant.objects.get(account__org=org, source=GrantSource.TRIAL)
    assert (trial.remaining_micros, trial.expires_at) == (250 * C, ends)
    assert balance(org) == 250 * C  # the trial's credits, not Starter's 1,000 on top for the trial days
    assert not AllowancePeriod.objects.filter(org=org).exists()

    # The trial's end is not the end of the plan: it is kept, and billed from then on.
    with time_machine.travel(ends + timedelta(minutes=1)):
        assert services.trials_end() == 0
    assert state_of(org).plan_code == "starter"


def test_in_the_trials_last_two_days_billing_starts_now_and_the_trial_credits_stay(fake_stripe, stripe_account,
                                                                                    org, owner):
    services.trial_start(org=org, actor=owner)
    with time_machine.travel(timezone.now() + timedelta(days=5, hours=1)):  # 47 h left: Stripe needs 48
        services.checkout_start(org=org, kind="plan", code="starter", actor=owner)

    params = fake_stripe.created["checkout.session.params"][-1]
    assert "trial_end" not in params.get("subscription_data", {})
