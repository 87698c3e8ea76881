import pytest
from django.test import Client

from billing.models import BillingState, CheckoutStart, Purchase
from tests.billing.helpers import C, balance

pytestmark = pytest.mark.django_db


@pytest.fixture
def owner_client(client, owner):
    client.force_login(owner)
    return client


@pytest.fixture
def simulated(settings, catalog):
    settings.BILLING_SIMULATED_PAYMENTS = True


def test_without_stripe_keys_the_top_up_page_says_stripe_is_not_configured(catalog, owner_client):
    page = owner_client.get("/billing/top-up/")

    assert page.status_code == 200
    assert "Stripe is not configured" in page.content.decode()
    assert "Buy 500 credits" not in page.content.decode()


def test_the_first_buy_page_now_sends_people_to_top_up(catalog, owner_client):
    response = owner_client.get("/billing/checkout/")

    assert response.status_code == 302 and response["Location"] == "/billing/top-up/"


def test_starting_a_checkout_without_keys_explains_instead_of_crashing(catalog, owner_client):
    response = owner_client.post("/billing/checkout/start/", {"kind": "pack", "code": "pack_500"}, follow=True)

    assert response.status_code == 200
    assert "Stripe is not configured" in response.content.decode()
    assert not CheckoutStart.objects.exists()


def test_the_portal_without_keys_explains(catalog, owner_client):
    response = owner_client.post("/billing/portal/", follow=True)

    assert "needs Stripe" in response.content.decode()


def test_a_simulated_pack_payment_runs_the_webhooks_fulfilment(simulated, owner_client, org):
    start = owner_client.post("/billing/checkout/start/", {"kind": "pack", "code": "pack_2000"})
    assert start.status_code == 303 and start["Location"].startswith("/billing/checkout/simulate/sim_cs_")

    page = owner_client.get(start["Location"])
    assert "Simulated payment" in page.content.decode() and "No card is asked for" in page.content.decode()
    before = balance(org)
    done = owner_client.post(start["Location"], follow=True)

    assert balance(org) - before == 2000 * C
    assert "Credits added" in done.content.decode()
    purchase = Purchase.objects.get(org=org)
    assert purchase.simulated and purchase.grant.source == "purchase"
    owner_client.post(start["Location"])  # a double click
    assert Purchase.objects.count() == 1


def test_a_simulated_plan_subscribes_with_its_allowance(simulated, owner_client, org):
    start = owner_client.post("/billing/checkout/start/", {"kind": "plan", "code": "pro", "interval": "month"})
    owner_client.post(start["Location"])

    state = BillingState.objects.get(org=org)
    assert (state.plan_code, state.status) == ("pro", "active")
    assert balance(org) >= 10_000 * C


def test_a_member_without_the_billing_role_cannot_buy(simulated, client, member):
    client.force_login(member)
    page = client.get("/billing/top-up/")
    assert "Only owners, admins and billing managers" in page.content.decode()

    response = client.post("/billing/checkout/start/", {"kind": "pack", "code": "pack_500"}, follow=True)
    assert not CheckoutStart.objects.exists()
    assert "Only" in response.content.decode()


def test_starting_a_checkout_needs_the_csrf_token(simulated, owner):
    client = Client(enforce_csrf_checks=True)
    client.force_login(owner)

    response = client.post("/billing/checkout/start/", {"kind": "pack", "code": "pack_500"})

    assert response.status_code == 403
    assert not CheckoutStart.objects.exists()


def test_another_orgs_checkout_is_a_404(simulated, owner_client, outsider):
    other = Client()
    other.force_login(outsider)
    start = other.post("/billing/checkout/start/", {"kind": "pack", "code": "pack_500"})
    session_id = start["Location"].rstrip("/").rsplit("/", 1)[-1]

    assert owner_client.get(start["Location"]).status_code == 404
    assert owner_client.post(start["Location"]).status_code == 404
    assert owner_client.get(f"/billing/checkout/done/?session_id={session_id}").status_code == 404


def test_with_stripe_the_start_redirects_to_stripe_checkout(stripe_account, owner_client):
    response = owner_client.post("/billing/checkout/start/", {"kind": "pack", "code": "pack_500", "return_to": "top_up"})

    assert response.status_code == 303
    assert response["Location"].startswith("https://checkout.stripe.com/")


def test_the_return_page_waits_for_the_webhook_then_shows_the_credits(stripe_account, webhooks, fake_stripe, owner_client,
                                                                      org, owner):
    from tests.billing.helpers import paid_session, start_pack_checkout

    start = start_pack_checkout(org, owner, "pack_500")
    waiting = owner_client.get(f"/billing/checkout/done/?session_id={start.session_id}")
    assert "confirming" in waiting.content.decode() and 'http-equiv="refresh"' in waiting.content.decode()

    webhooks.send("checkout.session.completed", paid_session(fake_stripe, start))
    done = owner_client.get(f"/billing/checkout/done/?session_id={start.session_id}")
    assert "Credits added" in done.content.decode()
