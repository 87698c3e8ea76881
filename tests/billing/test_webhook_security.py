import pytest
from djstripe import models as djstripe_models

from billing.models import Purchase
from tests.billing import stripe_builders as b
from tests.billing.helpers import balance, paid_session, start_pack_checkout
from usage.models import LedgerEntry

pytestmark = pytest.mark.django_db


@pytest.fixture
def paid_event(webhooks, fake_stripe, org, owner):
    start = start_pack_checkout(org, owner, "pack_500")
    return b.event("checkout.session.completed", paid_session(fake_stripe, start))


def assert_nothing_happened(org, before):
    assert balance(org) == before
    assert not Purchase.objects.exists()
    assert not djstripe_models.Event.objects.exists()


def test_a_bad_signature_is_refused_without_side_effects(webhooks, paid_event, org):
    before = balance(org)
    response = webhooks.post(paid_event, secret="whsec_not_the_endpoints_secret")

    assert response.status_code == 400
    assert_nothing_happened(org, before)
    assert djstripe_models.WebhookEventTrigger.objects.get().valid is False


def test_a_stale_timestamp_is_refused_without_side_effects(webhooks, paid_event, org):
    before = balance(org)
    too_old = b.now() - webhooks.endpoint.djstripe_tolerance - 60
    response = webhooks.post(paid_event, timestamp=too_old)

    assert response.status_code == 400
    assert_nothing_happened(org, before)


def test_a_missing_signature_is_refused(webhooks, paid_event, org, client):
    response = client.post(webhooks.url, data=paid_event, content_type="application/json")

    assert response.status_code == 400
    assert not djstripe_models.WebhookEventTrigger.objects.exists()


def test_a_tampered_body_is_refused(webhooks, paid_event, org):
    import json

    import stripe

    payload = json.dumps(paid_event)
    header = stripe.WebhookSignature.generate_signature_header(payload, webhooks.endpoint.secret)
    response = webhooks.client.post(webhooks.url, data=payload.replace("pack_500", "pack_15000"),
                                    content_type="application/json", HTTP_STRIPE_SIGNATURE=header)

    assert response.status_code == 400
    assert not Purchase.objects.exists()


def test_an_unknown_endpoint_is_a_404(webhooks, paid_event, client):
    response = client.post("/stripe/webhook/00000000-0000-0000-0000-000000000000/", data=paid_event,
                           content_type="application/json", HTTP_STRIPE_SIGNATURE="t=1,v1=x")

    assert response.status_code == 404


def test_an_unknown_event_type_is_accepted_and_ignored(webhooks, org):
    before = balance(org)
    entries = LedgerEntry.objects.count()
    response = webhooks.post(b.event("tollgate.something_new", {"id": "obj_123", "object": "thing"}))

    assert response.status_code == 200
    assert balance(org) == before and LedgerEntry.objects.count() == entries


LIVE_KEY = "sk_live_T0llgateLiveSecretKey0123456789"


def test_an_event_from_the_other_mode_than_the_key_is_ignored_and_logged(webhooks, paid_event, org, settings,
                                                                         caplog):
    settings.STRIPE_SECRET_KEY = LIVE_KEY  # a live deployment; the event was made in test mode
    before = balance(org)
    assert paid_event["livemode"] is False

    with caplog.at_level("WARNING", logger="billing.webhooks"):
        response = webhooks.post(paid_event)

    assert response.status_code == 400
    assert_nothing_happened(org, before)
    trigger = djstripe_models.WebhookEventTrigger.objects.get()
    assert (trigger.valid, trigger.processed) == (False, False)
    assert any(paid_event["id"] in r.getMessage() and "test mode" in r.getMessage() for r in caplog.records)


def test_a_live_event_is_ignored_with_a_test_key(webhooks, paid_event, org):
    before = balance(org)
    response = webhooks.post({**paid_event, "livemode": True})

    assert response.status_code == 400
    assert_nothing_happened(org, before)


def test_an_event_of_the_keys_mode_is_processed(webhooks, paid_event, org):
    before = balance(org)
    response = webhooks.post(paid_event)

    assert response.status_code == 200
    assert balance(org) > before and Purchase.objects.count() == 1
