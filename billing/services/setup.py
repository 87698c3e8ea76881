"""Connecting a Tollgate to a Stripe account the way dj-stripe expects it:
the secret key as a dj-stripe APIKey (which fetches and stores the Account),
and one webhook endpoint whose URL carries dj-stripe's UUID."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING

import stripe
from django.conf import settings
from django.db import transaction
from django.urls import reverse
from djstripe import models as djstripe_models
from djstripe.enums import WebhookEndpointStatus
from djstripe.settings import djstripe_settings

from billing import gateway
from billing_project import request_context
from orgs.services import audit_record

if TYPE_CHECKING:
    from orgs.services import Actor

# What Tollgate acts on, and what keeps dj-stripe's copies (invoices for the
# invoice list, customers, payment methods) fresh.
WEBHOOK_EVENTS = sorted([
    "checkout.session.completed", "checkout.session.async_payment_succeeded",
    "checkout.session.async_payment_failed", "checkout.session.expired",
    "customer.subscription.created", "customer.subscription.updated", "customer.subscription.deleted",
    "invoice.paid", "invoice.payment_failed", "invoice.finalized", "invoice.updated", "invoice.voided",
    "payment_intent.succeeded", "payment_intent.payment_failed", "payment_intent.requires_action",
    "charge.refunded", "charge.dispute.created", "charge.dispute.closed",
    "customer.updated", "customer.deleted", "payment_method.attached", "payment_method.detached",
    "product.updated", "price.updated",
])


@dataclass(frozen=True)
class SetupResult:
    account_id: str
    livemode: bool
    endpoint_url: str
    endpoint_created: bool
    forwarded: bool


def webhook_path(endpoint_uuid: uuid.UUID) -> str:
    return reverse("djstripe:djstripe_webhook_by_uuid", kwargs={"uuid": endpoint_uuid})


@transaction.atomic
def stripe_setup(*, base_url: str | None = None, actor: Actor = "command:stripe_setup") -> SetupResult:
    """Register the secret key and make sure Stripe sends events to this Tollgate.

    Idempotent. With STRIPE_WEBHOOK_SECRET set (an endpoint made in the
    dashboard, or `stripe listen`), that secret is recorded on a local
    endpoint row and its URL is printed for you to point Stripe at; otherwise
    the endpoint is created (or updated) through the API at SITE_URL.
    """
    key = gateway.api_key()
    base = (base_url or request_context.site_url()).rstrip("/")
    with gateway.translated_errors("set up the Stripe account"):
        api_key, _ = djstripe_models.APIKey.objects.get_or_create_by_api_key(key)
        if api_key.djstripe_owner_account is None:
            api_key.refresh_account()
        account = api_key.djstripe_owner_account
        endpoints = djstripe_models.WebhookEndpoint.objects.filter(livemode=api_key.livemode).exclude(secret="")
        created = forwarded = False
        if settings.STRIPE_WEBHOOK_SECRET:
            forwarded = True
            endpoint = endpoints.filter(secret=settings.STRIPE_WEBHOOK_SECRET).first()
            if endpoint is None:
                endpoint_uuid = uuid.uuid4()
                endpoint = djstripe_models.WebhookEndpoint.objects.create(
                    id=f"tollgate_whsec_{endpoint_uuid.hex}", api_version=djstripe_settings.STRIPE_API_VERSION,
                    enabled_events=WEBHOOK_EVENTS, secret=settings.STRIPE_WEBHOOK_SECRET,
                    status=WebhookEndpointStatus.enabled, url=base + webhook_path(endpoint_uuid),
                    djstripe_owner_account=account, djstripe_uuid=endpoint_uuid, livemode=api_key.livemode,
                )
                created = True
        else:
            endpoint = endpoints.filter(url__startswith=base + "/", id__startswith="we_").first()
            if endpoint is None:
                endpoint_uuid = uuid.uuid4()
                data = stripe.WebhookEndpoint.create(
                    url=base + webhook_path(endpoint_uuid), enabled_events=WEBHOOK_EVENTS,
                    api_version=djstripe_settings.STRIPE_API_VERSION, description="Tollgate",
                    metadata={"djstripe_uuid": str(endpoint_uuid)}, **gateway.options(),
                )
                # Stripe shows the signing secret only in this response; dj-stripe stores it.
                endpoint = djstripe_models.WebhookEndpoint.sync_from_stripe_data(gateway.to_dict(data), api_key=key)
                created = True
            elif sorted(endpoint.enabled_events or []) != WEBHOOK_EVENTS:
                data = gateway.to_dict(stripe.WebhookEndpoint.modify(
                    endpoint.id, enabled_events=WEBHOOK_EVENTS, **gateway.options()))
                data["secret"] = endpoint.secret
                endpoint = djstripe_models.WebhookEndpoint.sync_from_stripe_data(data, api_key=key)
    audit_record(org=None, action="billing.stripe_setup", actor=actor,
                 data={"account": account.id, "endpoint": endpoint.id, "created": created})
    return SetupResult(account_id=account.id, livemode=bool(api_key.livemode), endpoint_url=endpoint.url,
                       endpoint_created=created, forwarded=forwarded)
