import pytest
from rest_framework.test import APIClient

from accounts.models import Scope
from tests.billing import stripe_builders as b
from tests.billing.helpers import invoice_for, subscription_for
from tests.factories import api_key_for

pytestmark = pytest.mark.django_db


def client_for(org, scopes=(Scope.READ,)):
    _key, secret = api_key_for(org, scopes=scopes)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return client


def test_plans_list_prices_and_allowances_as_exact_strings(catalog, api):
    plans = api.get("/api/v1/plans").json()["data"]

    assert [p["code"] for p in plans] == ["free", "starter", "pro", "max"]
    starter = plans[1]
    assert starter["prices"][0] == {"interval": "month", "price": "9.99", "price_cents": 999, "currency": "usd",
                                    "allowance": "1000"}
    assert starter["prices"][1]["price"] == "99.90"  # ten months: two free
    assert plans[0]["features"] == ["basic_workflows"]
    assert plans[2]["overage_allowed"] is True


def test_packages_list_the_packs(catalog, api):
    packs = api.get("/api/v1/packages").json()["data"]

    assert [(p["credits"], p["price"]) for p in packs] == [
        ("500", "5.00"), ("2000", "18.00"), ("5000", "40.00"), ("15000", "100.00")]


def test_the_subscription_shows_the_trial(catalog, org, api):
    from billing import services

    services.trial_start(org=org)
    body = api.get("/api/v1/subscription").json()

    assert (body["plan"], body["status"], body["trial_days_left"]) == ("starter", "trialing", 7)
    assert body["stripe_configured"] is False and body["auto_top_up"] is None
    assert body["features"] == ["basic_workflows", "advanced_workflows", "api_access"]


def test_invoices_are_the_orgs_own_newest_first_and_paginated(webhooks, fake_stripe, org, owner, other_org):
    sub = subscription_for(fake_stripe, org, "starter")
    webhooks.send("customer.subscription.created", sub)
    first = invoice_for(fake_stripe, sub, created=b.now() - 3600)
    second = invoice_for(fake_stripe, sub)
    webhooks.send("invoice.paid", first)
    webhooks.send("invoice.paid", second)
    api = client_for(org)

    page = api.get("/api/v1/invoices?limit=1").json()
    assert [i["id"] for i in page["data"]] == [second["id"]] and page["has_more"] is True
    assert page["data"][0]["total_cents"] == 999 and page["data"][0]["invoice_pdf"]
    rest = api.get(f"/api/v1/invoices?limit=1&starting_after={second['id']}").json()
    assert [i["id"] for i in rest["data"]] == [first["id"]] and rest["has_more"] is False

    other = client_for(other_org)
    assert other.get("/api/v1/invoices").json()["data"] == []
    assert other.get(f"/api/v1/invoices?starting_after={first['id']}").status_code == 404


def test_reads_need_a_key(catalog, client):
    assert client.get("/api/v1/plans").status_code == 401


def test_the_schema_documents_the_billing_endpoints(client):
    schema = client.get("/api/schema/?format=json").json()

    for path in ["/api/v1/plans", "/api/v1/packages", "/api/v1/checkout", "/api/v1/portal",
                 "/api/v1/subscription", "/api/v1/invoices"]:
        assert path in schema["paths"], path


def test_a_trial_has_no_interval_and_the_trials_allowance(catalog, org, api):
    from billing import services

    services.trial_start(org=org)
    body = api.get("/api/v1/subscription").json()

    assert (body["status"], body["interval"], body["allowance"]) == ("trialing", None, "250")
