"""Every Stripe webhook Tollgate acts on, in one place.

dj-stripe receives the POST on /stripe/webhook/<uuid>/, verifies the
signature against the endpoint's secret (refusing bad signatures and stale
timestamps with 400), stores the event once per event id (a duplicate
delivery, even a concurrent one, runs no handler), re-fetches the object from
Stripe and syncs its own tables, then sends the event's signal. The receivers
below run after dj-stripe's own (billing is installed after djstripe), inside
the same transaction: if one raises, nothing is kept and Stripe retries.

Between verifying and processing, `refuse_other_mode` turns away events whose
mode differs from the secret key's: a test-mode event signed with the
endpoint's secret must never grant credits on a live deployment, nor a live
one on a test deployment.

Each receiver is thin: it reads the object as dj-stripe just synced it from
Stripe (the latest state, not the possibly stale payload) and calls one
billing service. Services are idempotent on the Stripe object, so different
events about one object (completed, then async_payment_succeeded) and
replays never grant twice.
"""

from __future__ import annotations

import logging

from django.dispatch import receiver
from djstripe import models as djstripe_models
from djstripe import signals as djstripe_signals
from djstripe.event_handlers import djstripe_receiver

from billing import gateway, services
from billing.models import CheckoutStatus
from billing.stripe_data import invoice_facts, metadata, stripe_id
from billing_project.request_context import acting_as

logger = logging.getLogger(__name__)


@receiver(djstripe_signals.webhook_post_validate)
def refuse_other_mode(sender, instance: djstripe_models.WebhookEventTrigger, valid: bool, **kwargs) -> None:
    """A delivery dj-stripe verified is processed only when its event is of the
    secret key's mode. Otherwise it is logged and marked not valid, so dj-stripe
    stores no event, runs no handler and answers 400."""
    expected = gateway.livemode()
    event = instance.json_body
    if valid and expected is not None and event.get("livemode") is not expected:
        logger.warning(
            "Ignored Stripe event %s (%s): it is a %s event and the secret key is a %s key.",
            event.get("id"), event.get("type"), _mode(event.get("livemode")), _mode(expected),
        )
        instance.valid = False


def _mode(livemode) -> str:
    return "live mode" if livemode is True else "test mode" if livemode is False else f"livemode={livemode!r}"


def _latest(model, event) -> dict:
    """The event's object as dj-stripe synced it from Stripe, else the payload."""
    payload = event.data.get("object") or {}
    synced = model.objects.filter(id=payload.get("id")).first() if payload.get("id") else None
    return synced.stripe_data if synced is not None and synced.stripe_data else payload


@djstripe_receiver(["checkout.session.completed", "checkout.session.async_payment_succeeded"])
def on_checkout_session_paid(sender, event, **kwargs):
    with acting_as("stripe"):
        services.checkout_session_paid(session=_latest(djstripe_models.Session, event))


@djstripe_receiver("checkout.session.expired")
def on_checkout_session_expired(sender, event, **kwargs):
    services.checkout_session_closed(session=_latest(djstripe_models.Session, event), status=CheckoutStatus.EXPIRED)


@djstripe_receiver("checkout.session.async_payment_failed")
def on_checkout_session_payment_failed(sender, event, **kwargs):
    # Nothing was granted for an unpaid session; the return page tells the buyer.
    logger.info("Delayed payment for checkout session %s failed.", event.data.get("object", {}).get("id"))
    services.checkout_session_closed(session=_latest(djstripe_models.Session, event), status=CheckoutStatus.FAILED)


@djstripe_receiver(["customer.subscription.created", "customer.subscription.updated", "customer.subscription.deleted"])
def on_subscription_changed(sender, event, **kwargs):
    subscription = event.data.get("object") or {}
    with acting_as("stripe"):
        services.subscription_refresh(
            subscription_id=subscription["id"], customer_id=stripe_id(subscription.get("customer")),
            metadata=metadata(subscription),
        )


@djstripe_receiver("invoice.paid")
def on_invoice_paid(sender, event, **kwargs):
    with acting_as("stripe"):
        services.invoice_paid(invoice=invoice_facts(_latest(djstripe_models.Invoice, event)))


@djstripe_receiver("invoice.payment_failed")
def on_invoice_payment_failed(sender, event, **kwargs):
    with acting_as("stripe"):
        services.invoice_payment_failed(invoice=invoice_facts(_latest(djstripe_models.Invoice, event)))


@djstripe_receiver(["payment_intent.succeeded", "payment_intent.payment_failed", "payment_intent.requires_action"])
def on_payment_intent(sender, event, **kwargs):
    with acting_as("stripe"):
        services.topup_intent_update(intent=_latest(djstripe_models.PaymentIntent, event))


@djstripe_receiver("charge.refunded")
def on_charge_refunded(sender, event, **kwargs):
    with acting_as("stripe"):
        services.charge_refunded(charge=_latest(djstripe_models.Charge, event))


@djstripe_receiver("charge.dispute.created")
def on_dispute_created(sender, event, **kwargs):
    with acting_as("stripe"):
        services.dispute_opened(dispute=_latest(djstripe_models.Dispute, event))


@djstripe_receiver("charge.dispute.closed")
def on_dispute_closed(sender, event, **kwargs):
    with acting_as("stripe"):
        services.dispute_closed(dispute=_latest(djstripe_models.Dispute, event))
