import pytest
from django.core.management import CommandError, call_command
from djstripe import models as djstripe_models

from billing.models import Pack, Plan, PlanPrice

pytestmark = pytest.mark.django_db


@pytest.fixture
def connected(fake_stripe):
    from billing import services

    services.stripe_setup(base_url="https://billing.example.test")
    return fake_stripe


def test_sync_catalog_loads_the_file_and_creates_everything_in_stripe(connected, capsys):
    call_command("sync_catalog")

    assert Plan.objects.count() == 4 and Pack.objects.count() == 4
    prices = connected.created["price"]
    # 3 paid plans x 2 intervals, 4 packs, 2 overage prices; Free needs nothing in Stripe
    assert len(prices) == 12
    assert len(connected.created["product"]) == 3 + 4 + 1
    assert len(connected.created["billing.meter"]) == 1
    assert {p["lookup_key"] for p in prices} >= {"tollgate_pro_year", "tollgate_pack_15000", "tollgate_overage_month"}
    assert all(p["tax_behavior"] == "exclusive" for p in prices)
    assert djstripe_models.Price.objects.count() == 12
    assert all(p.stripe_price_id for p in PlanPrice.objects.exclude(amount_cents=0))


def test_sync_catalog_twice_changes_nothing_in_stripe(connected, capsys):
    call_command("sync_catalog")
    posts = connected.count("POST", "/v1/")

    call_command("sync_catalog")

    assert connected.count("POST", "/v1/") == posts
    assert "Stripe created: 0" in capsys.readouterr().out


def test_a_new_amount_makes_a_new_price_that_takes_over_the_lookup_key(connected):
    call_command("sync_catalog")
    pack = Pack.objects.get(code="pack_500")
    old_price = pack.stripe_price_id
    Pack.objects.filter(pk=pack.pk).update(amount_cents=450)  # edited in the admin

    call_command("sync_catalog")

    pack.refresh_from_db()
    assert pack.stripe_price_id != old_price
    new = connected.get(pack.stripe_price_id)
    assert (new["unit_amount"], new["lookup_key"]) == (450, "tollgate_pack_500")
    assert connected.get(old_price)["active"] is False and connected.get(old_price)["lookup_key"] is None


def test_sync_catalog_without_keys_loads_locally_and_says_stripe_is_not_configured(db):
    with pytest.raises(CommandError, match="Stripe is not configured"):
        call_command("sync_catalog")
    assert Plan.objects.count() == 4


def test_stripe_setup_command_prints_the_endpoint(fake_stripe, capsys, settings):
    settings.SITE_URL = "https://billing.example.test"
    call_command("stripe_setup")

    out = capsys.readouterr().out
    endpoint = djstripe_models.WebhookEndpoint.objects.get()
    assert f"https://billing.example.test/stripe/webhook/{endpoint.djstripe_uuid}/" in out


def test_a_webhook_secret_from_the_dashboard_is_recorded_on_a_local_endpoint(fake_stripe, settings):
    settings.STRIPE_WEBHOOK_SECRET = "whsec_from_the_dashboard"
    call_command("stripe_setup", base_url="http://localhost:8000")
    call_command("stripe_setup", base_url="http://localhost:8000")

    endpoint = djstripe_models.WebhookEndpoint.objects.get()
    assert endpoint.secret == "whsec_from_the_dashboard"
    assert fake_stripe.count("POST", "/v1/webhook_endpoints") == 0
