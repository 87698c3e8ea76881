from urllib.parse import parse_qs, urlsplit

import pytest

from accounts.models import Scope
from billing.models import CheckoutStart, Purchase
from orgs.models import AuditEvent
from tests.billing.helpers import C, balance, paid_session, start_pack_checkout
from tests.factories import api_key_for

pytestmark = pytest.mark.django_db


@pytest.fixture
def billing_api(org):
    from rest_framework.test import APIClient

    _key, secret = api_key_for(org, scopes=(Scope.READ, Scope.BILLING_WRITE))
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return client


def test_a_pack_checkout_is_made_on_the_server_with_tax_and_fixed_return_urls(stripe_account, fake_stripe, org, owner, billing_api):
    response = billing_api.post("/api/v1/checkout", {"kind": "pack", "code": "pack_2000", "return_to": "top_up"},
                                format="json")

    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["url"].startswith("https://checkout.stripe.com/") and body["simulated"] is False
    params = fake_stripe.created["checkout.session.params"][-1]
    assert params["mode"] == "payment"
    assert params["automatic_tax"] == {"enabled": "true"} and params["tax_id_collection"] == {"enabled": "true"}
    assert params["line_items"] == [{"price": fake_stripe_price("pack_2000"), "quantity": "1"}]
    assert params["metadata"] == {"tollgate_org_id": str(org.pk), "tollgate_kind": "pack", "tollgate_item": "pack_2000"}
    assert params["payment_intent_data"]["setup_future_usage"] == "off_session"
    success = urlsplit(params["success_url"])
    assert success.netloc == "testserver" and success.path == "/billing/checkout/done/"
    assert parse_qs(success.query)["return_to"] == ["top_up"]
    assert CheckoutStart.objects.get(session_id=body["session_id"]).pack.code == "pack_2000"


def fake_stripe_price(code):
    from billing.models import Pack

    return Pack.objects.get(code=code).stripe_price_id


def test_checkout_refuses_a_return_page_outside_the_fixed_list(stripe_account, billing_api):
    response = billing_api.post("/api/v1/checkout", {"kind": "pack", "code": "pack_500",
                                                     "return_to": "https://evil.example"}, format="json")

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_request"


def test_checkout_needs_the_billing_write_scope(stripe_account, api):
    response = api.post("/api/v1/checkout", {"kind": "pack", "code": "pack_500"}, format="json")

    assert response.status_code == 403


def test_an_unknown_pack_is_a_404(stripe_account, billing_api):
    response = billing_api.post("/api/v1/checkout", {"kind": "pack", "code": "pack_1"}, format="json")

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "unknown_catalog_item"


def test_a_pack_grant_uses_the_catalog_amount_not_the_payload(webhooks, fake_stripe, org, owner):
    start = start_pack_checkout(org, owner, "pack_500")
    before = balance(org)
    # Whatever the session claims (a bigger pack in its metadata, a tiny amount),
    # the checkout we recorded sold pack_500.
    session = paid_session(fake_stripe, start, metadata={"tollgate_org_id": str(org.pk), "tollgate_kind": "pack",
                                                         "tollgate_item": "pack_15000"}, amount_total=1)

    webhooks.send("checkout.session.completed", session)

    assert balance(org) - before == 500 * C
    purchase = Purchase.objects.get(org=org)
    assert (purchase.pack.code, purchase.credits_micros, purchase.payment_intent_id) == (
        "pack_500", 500 * C, session["payment_intent"])
    assert AuditEvent.objects.filter(org=org, action="billing.pack_purchased").exists()


def test_an_unpaid_checkout_grants_nothing_until_the_async_payment_succeeds(webhooks, fake_stripe, org, owner):
    start = start_pack_checkout(org, owner, "pack_2000")
    before = balance(org)
    session = paid_session(fake_stripe, start, payment_status="unpaid")

    webhooks.send("checkout.session.completed", session)
    assert balance(org) == before
    assert not Purchase.objects.exists()

    session = paid_session(fake_stripe, start, payment_status="paid")
    webhooks.send("checkout.session.async_payment_succeeded", session)
    assert balance(org) - before == 2000 * C

    # completed arriving again (or late) after the async success changes nothing
    webhooks.send("checkout.session.completed", session)
    assert balance(org) - before == 2000 * C
    assert Purchase.objects.count() == 1


def test_checkout_without_stripe_keys_says_stripe_is_not_configured(catalog, org, billing_api):
    response = billing_api.post("/api/v1/checkout", {"kind": "pack", "code": "pack_500"}, format="json")

    assert response.status_code == 503
    assert response.json()["error"]["code"] == "stripe_not_configured"
    assert "Stripe is not configured" in response.json()["error"]["message"]


def test_the_portal_link_is_made_for_the_orgs_customer(stripe_account, fake_stripe, billing_api):
    response = billing_api.post("/api/v1/portal", {"return_to": "plans"}, format="json")

    assert response.status_code == 201
    assert response.json()["url"].startswith("https://billing.stripe.com/")
    assert fake_stripe.count("POST", "/v1/customers") == 1
    portal = fake_stripe.created["billing_portal.session"][-1]
    assert portal["return_url"] == "http://testserver/billing/plans/"


def test_the_org_gets_one_stripe_customer_linked_through_dj_stripe(stripe_account, fake_stripe, org, owner):
    from djstripe import models as djstripe_models

    from billing import services

    first = services.customer_for_org(org=org)
    services.checkout_start(org=org, kind="pack", code="pack_500", actor=owner)
    services.checkout_start(org=org, kind="plan", code="starter", actor=owner)

    assert fake_stripe.count("POST", "/v1/customers") == 1
    assert djstripe_models.Customer.objects.get(id=first.id).tollgate_billing.org == org
    assert fake_stripe.get(first.id)["metadata"]["tollgate_org_id"] == str(org.pk)


def test_a_second_subscription_checkout_is_sent_to_the_portal(webhooks, fake_stripe, org, owner, billing_api):
    from tests.billing.helpers import invoice_for, subscription_for

    sub = subscription_for(fake_stripe, org, "starter")
    webhooks.send("customer.subscription.created", sub)
    webhooks.send("invoice.paid", invoice_for(fake_stripe, sub))

    response = billing_api.post("/api/v1/checkout", {"kind": "plan", "code": "pro"}, format="json")

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "already_subscribed"
