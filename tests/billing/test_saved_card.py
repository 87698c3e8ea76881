"""The card auto top-up charges, shown where auto top-up is set: its brand and
last four as dj-stripe synced them from Stripe's webhooks, and a way to change
it through Stripe's portal."""

import pytest
from django.test import Client

from djstripe import models as djstripe_models
from tests.billing import stripe_builders as b
from tests.billing.helpers import customer_id

pytestmark = pytest.mark.django_db

PAGE = "/billing/settings/auto-top-up/"


def page(user) -> str:
    client = Client()
    client.force_login(user)
    response = client.get(PAGE)
    assert response.status_code == 200
    return response.content.decode()


def card(customer: str, brand: str, last4: str, **overrides) -> dict:
    base = b.payment_method(customer=customer)
    base["card"].update(brand=brand, display_brand=brand, last4=last4, exp_month=4, exp_year=2031)
    return {**base, **overrides}


@pytest.fixture
def customer(webhooks, org):
    return customer_id(org)


def test_it_shows_the_card_saved_at_the_last_purchase(webhooks, customer, owner):
    webhooks.send("payment_method.attached", card(customer, "visa", "4242", created=b.now() - 86400))
    webhooks.send("payment_method.attached", card(customer, "mastercard", "4444"))

    content = page(owner)
    assert 'data-testid="saved-card"' in content
    assert "Mastercard ending in 4444" in content and "expires 04/2031" in content
    assert "Change card" in content


def test_the_customers_default_card_wins_as_auto_top_up_charges_it(webhooks, fake_stripe, customer, owner):
    default = card(customer, "amex", "0005", created=b.now() - 86400)
    webhooks.send("payment_method.attached", default)
    webhooks.send("payment_method.attached", card(customer, "visa", "4242"))
    updated = {**fake_stripe.get(customer)}
    updated["invoice_settings"] = {**updated["invoice_settings"], "default_payment_method": default["id"]}
    webhooks.send("customer.updated", updated)
    assert djstripe_models.PaymentMethod.objects.count() == 2

    content = page(owner)
    assert "American Express ending in 0005" in content and "4242" not in content


def test_without_a_card_it_says_how_one_is_saved(webhooks, customer, owner):
    content = page(owner)
    assert "No card saved yet" in content and "Add a card" in content


def test_members_see_the_card_but_not_the_button(webhooks, customer, member):
    webhooks.send("payment_method.attached", card(customer, "visa", "4242"))
    content = page(member)
    assert "Visa ending in 4242" in content and "Change card" not in content


def test_changing_the_card_opens_the_portal_on_its_payment_method_screen(webhooks, fake_stripe, customer, owner):
    client = Client()
    client.force_login(owner)
    response = client.post("/billing/settings/card/")

    assert response.status_code == 303 and response["Location"].startswith("https://billing.stripe.com/")
    params = [p for method, path, p in fake_stripe.calls if method == "POST" and path.startswith("/v1/billing_portal")][-1]
    assert params["customer"] == customer
    assert params["flow_data"]["type"] == "payment_method_update"
    assert params["return_url"].endswith(PAGE)


def test_a_member_cannot_change_the_card(webhooks, customer, member):
    client = Client()
    client.force_login(member)
    assert client.post("/billing/settings/card/").status_code == 403
