"""Billing test fixtures: the catalog, Stripe keys, the fake Stripe API at the
HTTP edge, a Stripe account set up the way `manage.py stripe_setup` does it,
and signed webhook deliveries to dj-stripe's real endpoint."""

from __future__ import annotations

import json
import time

import pytest
import stripe
from django.test import TestCase
from djstripe import models as djstripe_models

from billing import services
from tests.billing import fake_stripe as fake_stripe_module
from tests.billing import stripe_builders as b

SECRET_KEY = "sk_test_T0llgateTestSecretKey0123456789"
PUBLISHABLE_KEY = "pk_test_T0llgateTestPublishableKey0123456"


@pytest.fixture
def catalog(db):
    services.catalog_load()


@pytest.fixture
def stripe_keys(settings, monkeypatch):
    settings.STRIPE_SECRET_KEY = SECRET_KEY
    settings.STRIPE_PUBLISHABLE_KEY = PUBLISHABLE_KEY
    # The fake answers at once; retries would only slow a failing test down.
    monkeypatch.setattr(stripe, "max_network_retries", 0)


@pytest.fixture
def fake_stripe(stripe_keys):
    mock, fake = fake_stripe_module.start()
    yield fake
    mock.stop()
    mock.reset()


@pytest.fixture
def stripe_account(fake_stripe, catalog) -> djstripe_models.WebhookEndpoint:
    """Connected the way an operator does it: `stripe_setup` (API key, Account,
    webhook endpoint through the API) and `sync_catalog` (products, prices)."""
    services.stripe_setup(base_url="https://billing.example.test")
    services.catalog_sync()
    return djstripe_models.WebhookEndpoint.objects.get()


class Webhooks:
    """Posts events, signed like Stripe signs them, to dj-stripe's endpoint."""

    def __init__(self, client, endpoint: djstripe_models.WebhookEndpoint, fake) -> None:
        self.client = client
        self.endpoint = endpoint
        self.fake = fake

    @property
    def url(self) -> str:
        return f"/stripe/webhook/{self.endpoint.djstripe_uuid}/"

    def post(self, event: dict, *, secret: str | None = None, timestamp: int | None = None, client=None):
        payload = json.dumps(event)
        header = stripe.WebhookSignature.generate_signature_header(
            payload, secret or self.endpoint.secret, timestamp=timestamp or int(time.time())
        )
        # What runs after the webhook's transaction commits (e-mails, tasks) runs here too.
        with TestCase.captureOnCommitCallbacks(execute=True):
            return (client or self.client).post(self.url, data=payload, content_type="application/json",
                                                HTTP_STRIPE_SIGNATURE=header)

    def send(self, type_: str, obj: dict, **overrides):
        """Deliver `type_` about `obj`, after making `obj` Stripe's current state."""
        self.fake.put(obj)
        response = self.post(b.event(type_, obj, **overrides))
        assert response.status_code == 200, response.content
        return response


@pytest.fixture
def webhooks(client, stripe_account, fake_stripe) -> Webhooks:
    return Webhooks(client, stripe_account, fake_stripe)


@pytest.fixture(autouse=True)
def rate_card(db):
    """The default rate card, as the data migration loads it (the suite skips
    migrations): the overview prices action sizes from it."""
    from usage.services import rates

    rates.clear_cache()
    rates.load_card_data(rates.read_data_file())
    yield rates.current_card()
    rates.clear_cache()
