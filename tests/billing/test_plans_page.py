"""The plans page: the plans side by side by the month or the year, the
current one marked, and what choosing another does: a checkout without a
subscription, Stripe's portal to confirm a change or a cancellation with one,
the simulated payment in the demo."""

import pytest
from django.test import Client

from billing import selectors, services
from billing.models import BillingState
from tests.billing.helpers import C, balance, invoice_for, subscription_for

pytestmark = pytest.mark.django_db


@pytest.fixture
def owner_client(owner):
    client = Client()
    client.force_login(owner)
    return client


def actions(org, interval="month") -> dict[str, str]:
    state = services.billing_state_for(org)
    return {card.plan.code: card.action for card in selectors.plan_cards(state=state, interval=interval)}


def test_on_the_sign_up_trial_the_trial_plan_is_marked_and_kept_by_subscribing(catalog, org, owner, owner_client):
    services.trial_start(org=org)

    assert actions(org) == {"free": "none", "starter": "subscribe", "pro": "subscribe", "max": "subscribe"}
    content = owner_client.get("/billing/plans/").content.decode()
    assert 'data-testid="current-plan"' in content and "7 days left in the trial" in content
    assert "$9.99" in content and "1,000</strong> credits a month" in content


def test_the_yearly_prices_show_what_they_save(catalog, org, owner_client):
    content = owner_client.get("/billing/plans/?interval=year").content.decode()

    assert "$99.90" in content and "12,000</strong> credits a year" in content
    assert "save $19.98 a year" in content  # 12 x $9.99 - $99.90
    assert 'aria-current="true" data-testid="interval-year"' in content


def test_a_subscriber_sees_upgrades_downgrades_and_cancel(webhooks, fake_stripe, org, owner, owner_client):
    sub = subscription_for(fake_stripe, org, "pro")
    webhooks.send("customer.subscription.created", sub)
    webhooks.send("invoice.paid", invoice_for(fake_stripe, sub))

    assert actions(org) == {"free": "cancel", "starter": "downgrade", "pro": "current", "max": "upgrade"}
    assert actions(org, "year")["pro"] == "switch"
    content = owner_client.get("/billing/plans/").content.decode()
    assert "Upgrade to Max" in content and "Downgrade to Starter" in content and "Downgrade to Free" in content
    assert "you keep Pro and its allowance until" in content
    assert 'data-testid="portal"' in content


def test_a_change_goes_to_stripes_portal_to_confirm_it(webhooks, fake_stripe, org, owner, owner_client):
    sub = subscription_for(fake_stripe, org, "starter")
    webhooks.send("customer.subscription.created", sub)

    response = owner_client.post("/billing/plans/change/", {"plan": "pro", "interval": "year"})

    assert response.status_code == 303 and response["Location"].startswith("https://billing.stripe.com/")
    params = [p for m, path, p in fake_stripe.calls if path == "/v1/billing_portal/sessions"][-1]
    flow = params["flow_data"]
    assert flow["type"] == "subscription_update_confirm"
    assert flow["subscription_update_confirm"]["subscription"] == sub["id"]
    item = flow["subscription_update_confirm"]["items"][0]
    assert item["id"] == sub["items"]["data"][0]["id"]
    from tests.billing.helpers import plan_price

    assert item["price"] == plan_price("pro", "year").stripe_price_id
    assert flow["after_completion"]["redirect"]["return_url"] == "http://testserver/billing/plans/"


def test_cancel_goes_to_stripes_portal_cancel_flow(webhooks, fake_stripe, org, owner, owner_client):
    sub = subscription_for(fake_stripe, org, "starter")
    webhooks.send("customer.subscription.created", sub)

    response = owner_client.post("/billing/plans/cancel/")

    assert response.status_code == 303
    params = [p for m, path, p in fake_stripe.calls if path == "/v1/billing_portal/sessions"][-1]
    assert params["flow_data"]["type"] == "subscription_cancel"
    assert params["flow_data"]["subscription_cancel"]["subscription"] == sub["id"]


def test_without_a_subscription_choosing_a_plan_is_a_checkout(stripe_account, fake_stripe, org, owner, owner_client):
    response = owner_client.post("/billing/plans/change/", {"plan": "pro", "interval": "month"})

    assert response.status_code == 303 and response["Location"].startswith("https://checkout.stripe.com/")
    assert fake_stripe.created["checkout.session.params"][-1]["mode"] == "subscription"


def test_in_the_demo_plans_change_and_cancel_at_once(settings, catalog, org, owner, owner_client):
    settings.BILLING_SIMULATED_PAYMENTS = True
    start = owner_client.post("/billing/plans/change/", {"plan": "pro", "interval": "month"})
    owner_client.post(start["Location"])
    assert BillingState.objects.get(org=org).plan_code == "pro"

    change = owner_client.post("/billing/plans/change/", {"plan": "starter", "interval": "month"})
    assert change["Location"].startswith("/billing/checkout/simulate/")
    owner_client.post(change["Location"])
    state = BillingState.objects.get(org=org)
    assert (state.plan_code, state.status) == ("starter", "active")
    assert selectors.allowance_for(org.pk).amount_micros == 1_000 * C  # the Pro allowance ended
    assert balance(org) == 1_000 * C

    same = owner_client.post("/billing/plans/change/", {"plan": "starter", "interval": "month"}, follow=True)
    assert "is already your plan" in same.content.decode()

    done = owner_client.post("/billing/plans/cancel/", follow=True)
    assert "on the Free plan now" in done.content.decode()
    assert BillingState.objects.get(org=org).plan_code == "free"
