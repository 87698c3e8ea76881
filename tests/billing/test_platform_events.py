"""Billing tells the platform: subscription, invoice and auto top-up events, once per Stripe object."""

import pytest

from billing import services
from billing.models import AutoTopUpSettings
from outbound.models import Event
from tests.billing import stripe_builders as b
from tests.billing.helpers import C, customer_id, invoice_for, subscription_for
from usage import services as usage_services
from usage.models import GrantSource

pytestmark = pytest.mark.django_db


def sent(org, type):
    return list(Event.objects.filter(org=org, type=type).order_by("sequence"))


def test_a_paid_invoice_sent_twice_is_one_invoice_paid_and_the_subscription_is_told(webhooks, fake_stripe, org,
                                                                                    owner):
    sub = subscription_for(fake_stripe, org, "pro")
    webhooks.send("customer.subscription.created", sub)
    webhooks.send("customer.subscription.created", sub)  # Stripe's duplicate
    invoice = invoice_for(fake_stripe, sub)
    webhooks.send("invoice.paid", invoice)
    webhooks.send("invoice.paid", invoice)
    [paid] = sent(org, "invoice.paid")
    assert paid.key == invoice["id"] and paid.payload["data"]["subscription_id"] == sub["id"]
    [updated] = sent(org, "subscription.updated")
    assert updated.payload["data"]["plan"] == "pro" and updated.payload["data"]["status"] == "active"


def test_a_failed_renewal_is_invoice_payment_failed_and_a_new_subscription_state(webhooks, fake_stripe, org, owner):
    sub = subscription_for(fake_stripe, org, "pro")
    webhooks.send("customer.subscription.created", sub)
    webhooks.send("invoice.paid", invoice_for(fake_stripe, sub))
    sub["status"] = "past_due"
    failed = invoice_for(fake_stripe, sub, status="open")
    webhooks.send("invoice.payment_failed", failed)
    webhooks.send("customer.subscription.updated", sub)
    [event] = sent(org, "invoice.payment_failed")
    assert event.key == failed["id"] and event.payload["data"]["grace_ends_at"]
    assert [e.payload["data"]["status"] for e in sent(org, "subscription.updated")] == ["active", "past_due"]


@pytest.fixture
def auto_topup(stripe_account, fake_stripe, org, owner):
    cus = fake_stripe.get(customer_id(org))
    pm = fake_stripe.put(b.payment_method(customer=cus["id"]))
    cus["invoice_settings"]["default_payment_method"] = pm["id"]
    usage_services.credits_grant(org=org, amount_micros=100 * C, source=GrantSource.PURCHASE, idempotency_key="seed")
    services.auto_topup_configure(org=org, enabled=True, threshold_micros=50 * C, pack_code="pack_500",
                                  monthly_cap_cents=2000, actor=owner)
    return AutoTopUpSettings.objects.get(org=org)


@pytest.mark.parametrize("outcome, type", [
    (None, "auto_topup.succeeded"), ("card_declined", "auto_topup.failed"),
    ("authentication_required", "auto_topup.action_required"),
])
def test_each_auto_top_up_outcome_is_told(auto_topup, fake_stripe, org, outcome, type,
                                          django_capture_on_commit_callbacks):
    if outcome:
        fake_stripe.payment_intent_outcome = outcome
    with django_capture_on_commit_callbacks(execute=True):
        usage_services.credits_debit(org=org, amount_micros=60 * C, idempotency_key="u1")
    [event] = sent(org, type)
    assert event.payload["data"]["credits"] == "500"
