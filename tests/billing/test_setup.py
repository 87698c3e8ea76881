from djstripe import models as djstripe_models

from billing import services
from billing.models import Pack, PlanPrice
from tests.billing.conftest import SECRET_KEY


def test_stripe_setup_registers_the_key_account_and_a_uuid_webhook_endpoint(fake_stripe, catalog):
    result = services.stripe_setup(base_url="https://billing.example.test")

    key = djstripe_models.APIKey.objects.get(secret=SECRET_KEY)
    endpoint = djstripe_models.WebhookEndpoint.objects.get()
    assert key.djstripe_owner_account.id == fake_stripe.account["id"] == result.account_id
    assert endpoint.url == f"https://billing.example.test/stripe/webhook/{endpoint.djstripe_uuid}/"
    assert endpoint.secret.startswith("whsec_")
    assert "checkout.session.completed" in endpoint.enabled_events


def test_stripe_setup_twice_creates_one_endpoint(fake_stripe, catalog):
    services.stripe_setup(base_url="https://billing.example.test")
    again = services.stripe_setup(base_url="https://billing.example.test")

    assert again.endpoint_created is False
    assert djstripe_models.WebhookEndpoint.objects.count() == 1
    assert fake_stripe.count("POST", "/v1/webhook_endpoints") == 1


def test_sync_catalog_creates_products_and_prices_by_lookup_key(stripe_account, fake_stripe):
    pro = PlanPrice.objects.get(lookup_key="tollgate_pro_month")
    pack = Pack.objects.get(code="pack_2000")
    assert djstripe_models.Price.objects.get(id=pro.stripe_price_id).lookup_key == "tollgate_pro_month"
    assert fake_stripe.get(pack.stripe_price_id)["unit_amount"] == 1800
    assert fake_stripe.get(pro.stripe_price_id)["recurring"]["interval"] == "month"
