"""Deliveries racing each other, in real threads with their own database
connections and real commits (transaction=True)."""

import threading
import time

import pytest
from django.core import mail
from django.db import connection
from django.test import Client
from djstripe import models as djstripe_models

from billing import services
from billing.models import Purchase
from tests.billing import stripe_builders as b
from tests.billing.helpers import C, balance, paid_session, start_pack_checkout
from usage import services as usage_services
from usage.models import Grant, GrantSource

pytestmark = pytest.mark.django_db(transaction=True)


def deliver_concurrently(webhooks, events: list[dict]) -> list[int]:
    barrier = threading.Barrier(len(events))
    statuses: list[int] = []
    errors: list[BaseException] = []

    def deliver(event):
        try:
            barrier.wait()
            statuses.append(webhooks.post(event, client=Client()).status_code)
        except BaseException as error:  # surfaced below, not lost in the thread
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=deliver, args=(event,)) for event in events]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors
    return statuses


@pytest.fixture
def slow_fulfilment(monkeypatch):
    """Hold the first delivery inside its transaction long enough for the second to arrive."""
    real = services.checkout_session_paid

    def slow(**kwargs):
        time.sleep(0.5)
        return real(**kwargs)

    monkeypatch.setattr(services, "checkout_session_paid", slow)


def test_the_same_webhook_delivered_twice_concurrently_grants_once(webhooks, fake_stripe, org, owner, slow_fulfilment):
    start = start_pack_checkout(org, owner, "pack_5000")
    before = balance(org)
    event = b.event("checkout.session.completed", paid_session(fake_stripe, start))

    statuses = deliver_concurrently(webhooks, [event, event])

    assert statuses == [200, 200]
    assert balance(org) - before == 5000 * C
    assert Purchase.objects.count() == 1
    assert Grant.objects.filter(account__org=org, source=GrantSource.PURCHASE).count() == 1
    assert djstripe_models.Event.objects.filter(id=event["id"]).count() == 1
    assert usage_services.ledger_reconcile(org_ids=[org.pk]) == []
    assert sum("receipt" in m.subject.lower() for m in mail.outbox) == 1


def test_completed_and_async_succeeded_racing_grant_once(webhooks, fake_stripe, org, owner, slow_fulfilment):
    start = start_pack_checkout(org, owner, "pack_500")
    before = balance(org)
    session = paid_session(fake_stripe, start)

    statuses = deliver_concurrently(webhooks, [
        b.event("checkout.session.completed", session),
        b.event("checkout.session.async_payment_succeeded", session),
    ])

    assert statuses == [200, 200]
    assert balance(org) - before == 500 * C
    assert Purchase.objects.count() == 1
