"""Buying a custom amount of credits: priced and recorded on the server when
the checkout starts, granted from that record once paid, once."""

import pytest
from django.test import override_settings

from accounts.models import Scope
from billing import services
from billing.models import BillingState, CheckoutStart, Purchase
from billing_project.errors import InvalidRequest
from orgs.models import AuditEvent
from tests.billing import stripe_builders as b
from tests.billing.helpers import C, balance
from tests.factories import api_key_for

pytestmark = pytest.mark.django_db


@pytest.fixture
def billing_api(org):
    from rest_framework.test import APIClient

    _key, secret = api_key_for(org, scopes=(Scope.READ, Scope.BILLING_WRITE))
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return client


def start_custom(org, owner, credits: int) -> CheckoutStart:
    result = services.checkout_start(org=org, kind="credits", credits_micros=credits * C, return_to="top_up", actor=owner)
    return CheckoutStart.objects.get(session_id=result.session_id)


def paid(fake, start: CheckoutStart, *, payment_status: str = "paid", amount: int | None = None, **overrides) -> dict:
    """Stripe's session once paid. `amount` lets a test pretend the payload says something else."""
    session = fake.get(start.session_id)
    customer = BillingState.objects.get(org=start.org).customer_id
    charged = start.amount_cents if amount is None else amount
    intent = b.payment_intent(amount=charged, customer=customer, metadata=session["metadata"],
                              status="succeeded" if payment_status == "paid" else "processing")
    fake.put(intent)
    session.update({"status": "complete", "payment_status": payment_status, "payment_intent": intent["id"],
                    "amount_subtotal": charged, "amount_total": charged, **overrides})
    return fake.put(session)


def test_a_custom_amount_is_priced_on_the_server_at_the_list_price(stripe_account, fake_stripe, org, owner):
    start = start_custom(org, owner, 1_234)

    assert (start.kind, start.credits_micros, start.amount_cents) == ("credits", 1_234 * C, 1_234)
    params = fake_stripe.created["checkout.session.params"][-1]
    assert params["mode"] == "payment"
    line = params["line_items"][0]
    assert line["price_data"]["unit_amount"] == "1234" and line["price_data"]["currency"] == "usd"
    assert line["price_data"]["tax_behavior"] == "exclusive"
    assert line["price_data"]["product_data"]["name"] == "1,234 Tollgate credits"
    assert params["automatic_tax"] == {"enabled": "true"}
    assert params["metadata"]["tollgate_kind"] == "credits"
    assert params["payment_intent_data"]["setup_future_usage"] == "off_session"
    assert AuditEvent.objects.get(org=org, action="billing.checkout_started").data["credits"] == "1234"


@override_settings(CREDIT_PRICE="0.015")
def test_the_price_follows_the_one_credit_price_rounded_half_up_to_the_cent(stripe_account, fake_stripe, org, owner):
    assert start_custom(org, owner, 1_001).amount_cents == 1_502  # 15.015 dollars -> 15.02


def test_fulfilment_grants_the_recorded_credits_not_what_the_payload_says(webhooks, fake_stripe, org, owner):
    start = start_custom(org, owner, 2_500)
    before = balance(org)
    session = paid(fake_stripe, start, amount=1, metadata={
        "tollgate_org_id": str(org.pk), "tollgate_kind": "credits", "tollgate_item": "credits",
        "tollgate_credits": "99999"})

    webhooks.send("checkout.session.completed", session)

    assert balance(org) - before == 2_500 * C
    purchase = Purchase.objects.get(org=org)
    assert (purchase.kind, purchase.pack, purchase.credits_micros, purchase.amount_cents) == (
        "credits", None, 2_500 * C, 2_500)
    assert purchase.grant.source == "purchase"  # bought credits: sendable, never expire
    assert CheckoutStart.objects.get(pk=start.pk).status == "complete"
    assert AuditEvent.objects.filter(org=org, action="billing.credits_purchased").exists()


def test_a_custom_amount_is_granted_once_however_often_stripe_says_so(webhooks, fake_stripe, org, owner):
    start = start_custom(org, owner, 700)
    before = balance(org)
    session = paid(fake_stripe, start, payment_status="unpaid")
    webhooks.send("checkout.session.completed", session)
    assert balance(org) == before  # a bank debit: nothing until it clears

    session = paid(fake_stripe, start)
    webhooks.send("checkout.session.async_payment_succeeded", session)
    webhooks.send("checkout.session.completed", session)
    webhooks.send("checkout.session.async_payment_succeeded", session)

    assert balance(org) - before == 700 * C
    assert Purchase.objects.count() == 1


def test_a_custom_session_we_never_recorded_grants_nothing(webhooks, fake_stripe, org, owner):
    from billing.services import customer_for_org

    customer = customer_for_org(org=org).id
    session = b.checkout_session(mode="payment", customer=customer, metadata={
        "tollgate_org_id": str(org.pk), "tollgate_kind": "credits", "tollgate_item": "credits",
        "tollgate_credits": "50000"})
    session.update(status="complete", payment_status="paid")
    before = balance(org)

    webhooks.send("checkout.session.completed", session)

    assert balance(org) == before
    assert not Purchase.objects.exists()


@pytest.mark.parametrize("credits, message", [
    (499, "Buy between 500 and 100,000 credits at a time."),
    (100_001, "Buy between 500 and 100,000 credits at a time."),
])
def test_amounts_outside_the_limits_are_refused_with_the_limits(stripe_account, org, owner, credits, message):
    with pytest.raises(InvalidRequest) as refused:
        start_custom(org, owner, credits)

    assert refused.value.message == message and refused.value.code == "amount_out_of_range"
    assert not CheckoutStart.objects.exists()


def test_a_fraction_of_a_credit_is_refused(stripe_account, org, owner):
    with pytest.raises(InvalidRequest) as refused:
        services.checkout_start(org=org, kind="credits", credits_micros=600 * C + 1, actor=owner)

    assert "whole number" in refused.value.message


def test_the_api_starts_a_custom_checkout_and_explains_bad_amounts(stripe_account, billing_api, org):
    response = billing_api.post("/api/v1/checkout", {"kind": "credits", "credits": "1500", "return_to": "top_up"},
                                format="json")
    assert response.status_code == 201, response.json()
    assert CheckoutStart.objects.get(session_id=response.json()["session_id"]).credits_micros == 1500 * C

    too_small = billing_api.post("/api/v1/checkout", {"kind": "credits", "credits": "10"}, format="json")
    assert too_small.status_code == 400
    assert too_small.json()["error"]["code"] == "amount_out_of_range"
    assert too_small.json()["error"]["fields"]["credits"] == ["Buy between 500 and 100,000 credits at a time."]

    missing = billing_api.post("/api/v1/checkout", {"kind": "credits"}, format="json")
    assert missing.status_code == 400 and "credits" in missing.json()["error"]["fields"]

    not_a_number = billing_api.post("/api/v1/checkout", {"kind": "credits", "credits": "lots"}, format="json")
    assert not_a_number.status_code == 400 and "credits" in not_a_number.json()["error"]["fields"]


def test_a_simulated_custom_amount_runs_the_same_fulfilment(settings, catalog, org, owner):
    settings.BILLING_SIMULATED_PAYMENTS = True
    start = start_custom(org, owner, 800)
    before = balance(org)

    services.checkout_simulate_pay(org=org, session_id=start.session_id, actor=owner)
    services.checkout_simulate_pay(org=org, session_id=start.session_id, actor=owner)  # a double click

    assert balance(org) - before == 800 * C
    purchase = Purchase.objects.get(org=org)
    assert purchase.simulated and purchase.kind == "credits"


def test_a_member_cannot_start_a_custom_checkout(stripe_account, org, member):
    from billing_project.errors import PermissionDenied

    with pytest.raises(PermissionDenied):
        services.checkout_start(org=org, kind="credits", credits_micros=600 * C, actor=member)
