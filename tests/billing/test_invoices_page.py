"""The invoices page: Stripe's invoices for the org as dj-stripe synced them,
with amounts, tax, status and PDF links; an empty state; pages."""

import pytest
from django.test import Client

from tests.billing import stripe_builders as b
from tests.billing.helpers import invoice_for, subscription_for

pytestmark = pytest.mark.django_db


def page(user, query: str = "") -> str:
    client = Client()
    client.force_login(user)
    response = client.get("/billing/invoices/" + query)
    assert response.status_code == 200
    return response.content.decode()


@pytest.fixture
def invoiced(webhooks, fake_stripe, org):
    sub = subscription_for(fake_stripe, org, "starter")
    webhooks.send("customer.subscription.created", sub)
    first = invoice_for(fake_stripe, sub, created=b.now() - 86400 * 31)
    # Stripe Tax added 80 cents to the second.
    second = invoice_for(fake_stripe, sub, total=1079, amount_due=1079, amount_paid=1079,
                         total_taxes=[{"amount": 80, "tax_behavior": "exclusive", "taxability_reason": "standard_rated",
                                       "taxable_amount": 999, "type": "tax_rate_details",
                                       "tax_rate_details": {"tax_rate": "txr_1"}}])
    webhooks.send("invoice.paid", first)
    webhooks.send("invoice.paid", second)
    return first, second


def test_it_lists_the_orgs_invoices_with_amounts_tax_status_and_links(invoiced, owner):
    first, second = invoiced
    content = page(owner)

    assert content.index(second["number"]) < content.index(first["number"])  # newest first
    assert "$9.99" in content and "$0.80" in content and "$10.79" in content
    assert ">Paid<" in content
    assert second["invoice_pdf"] in content and second["hosted_invoice_url"] in content


def test_members_read_the_invoices_too(invoiced, member):
    assert invoiced[1]["number"] in page(member)


def test_pages_go_back_in_time_and_another_orgs_invoices_never_show(invoiced, owner, outsider, monkeypatch):
    from billing.views import payments

    monkeypatch.setattr(payments, "INVOICE_PAGE", 1)
    first, second = invoiced
    newest = page(owner)
    assert second["number"] in newest and first["number"] not in newest and f"?after={second['id']}" in newest
    older = page(owner, f"?after={second['id']}")
    assert first["number"] in older and second["number"] not in older

    assert "No invoices yet." in page(outsider)
    client = Client()
    client.force_login(outsider)
    assert client.get(f"/billing/invoices/?after={first['id']}").status_code == 404


def test_without_invoices_it_says_so(catalog, owner):
    assert "No invoices yet." in page(owner)
    assert "Stripe is not configured on this Tollgate" in page(owner)
