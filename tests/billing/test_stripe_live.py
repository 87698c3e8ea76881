"""Against Stripe's real test mode. Skipped unless STRIPE_TEST_SECRET_KEY holds
an `sk_test_` key; run with `bin/test -m stripe_live`. These create test-mode
objects in that account (products and prices by lookup key, so re-runs reuse
them; a customer and a payment per run)."""

import os
import socket

import pytest
from django.test import override_settings

from billing import services
from billing.models import AttemptStatus, TopUpAttempt
from tests import conftest as root_conftest
from tests.billing.helpers import C, customer_id
from usage import services as usage_services
from usage.models import GrantSource

KEY = os.environ.get("STRIPE_TEST_SECRET_KEY", "")

pytestmark = [
    pytest.mark.stripe_live,
    pytest.mark.skipif(not KEY, reason="set STRIPE_TEST_SECRET_KEY to a Stripe test-mode key to run these"),
    pytest.mark.django_db,
]


@pytest.fixture
def live(settings, monkeypatch, catalog):
    assert KEY.startswith("sk_test_"), "only ever a test-mode key"
    settings.STRIPE_SECRET_KEY = KEY
    # These tests are the one place a socket may leave the machine: to Stripe.
    monkeypatch.setattr(socket.socket, "connect", root_conftest._real_connect)
    monkeypatch.setattr(socket.socket, "connect_ex", root_conftest._real_connect_ex)
    with override_settings(STRIPE_WEBHOOK_SECRET="whsec_live_tests_local_only"):
        services.stripe_setup(base_url="http://localhost:8000")  # key and account; no endpoint made in Stripe
    services.catalog_sync()


def test_live_catalog_sync_is_idempotent(live):
    again = services.catalog_sync()

    assert again.created == [] and again.updated == []


def test_live_checkout_session_for_a_pack(live, org, owner):
    result = services.checkout_start(org=org, kind="pack", code="pack_500", actor=owner)

    assert result.url.startswith("https://checkout.stripe.com/")


def test_live_off_session_top_up_charges_once_for_one_attempt(live, org, owner):
    import stripe

    from billing import gateway

    customer = customer_id(org)
    card = stripe.PaymentMethod.attach("pm_card_visa", customer=customer, **gateway.options())
    stripe.Customer.modify(customer, invoice_settings={"default_payment_method": card["id"]}, **gateway.options())
    usage_services.credits_grant(org=org, amount_micros=10 * C, source=GrantSource.PURCHASE, idempotency_key="seed")
    services.auto_topup_configure(org=org, enabled=True, threshold_micros=100 * C, pack_code="pack_500",
                                  monthly_cap_cents=1000, actor=owner)

    attempt = services.auto_topup_check(org_id=org.pk)
    assert attempt.status == AttemptStatus.SUCCEEDED
    # The same request again (a retried task) gets the same PaymentIntent back from Stripe.
    TopUpAttempt.objects.filter(pk=attempt.pk).update(status=AttemptStatus.PENDING, payment_intent_id="")
    again = services.topup_charge(attempt_id=attempt.pk)
    assert again.payment_intent_id == attempt.payment_intent_id
