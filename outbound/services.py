"""Outbound's writes: endpoints (create, rotate, enable, delete), events, resending.

`event_send` is the one entry point other apps call.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from billing_project.api import iso_z
from billing_project.errors import InvalidRequest
from orgs.models import Organization
from orgs.services import Actor, audit_record
from outbound import tasks, transport
from outbound.models import Delivery, DeliveryState, Event, WebhookEndpoint
from outbound.signing import secret_new

ROTATION_OVERLAP = timedelta(hours=24)
MAX_ENDPOINTS_PER_ORG = 16

# Every type an endpoint may subscribe to (docs/webhooks.md shows each with an example).
EVENT_TYPES = (
    "balance.low", "balance.depleted", "balance.replenished", "credits.granted", "hold.expired",
    "usage.limit_reached", "usage.unusual", "usage.paused", "usage.resumed",
    "subscription.updated", "invoice.paid", "invoice.payment_failed", "trial.ending", "grace.ending",
    "auto_topup.succeeded", "auto_topup.failed", "auto_topup.action_required",
)


class _AlreadySent(Exception):
    """Rolls back the savepoint that drew a sequence number for an event that exists."""


def event_send(*, org_id: int, type: str, data: Mapping[str, Any], key: str) -> Event | None:
    """Record the event (org, type, key) once and queue its deliveries after commit.

    A second call with the same (org, type, key), even from another process at
    the same moment, is a no-op and returns None. Deliveries are created for
    the org's enabled endpoints subscribed to `type`; one `.delay()` is queued
    after commit (the beat sweep picks up anything it misses)."""
    if Event.objects.filter(org_id=org_id, type=type, key=key).exists():
        return None
    now = timezone.now()
    try:
        with transaction.atomic():
            # Drawing the number locks the org's counter row until commit, so two
            # senders of the same event queue here and the second sees the first.
            sequence = _sequence_next(org_id)
            if Event.objects.filter(org_id=org_id, type=type, key=key).exists():
                raise _AlreadySent
            org = Organization.objects.only("pk", "slug").get(pk=org_id)
            public_id = "evt_" + secrets.token_hex(12)
            event = Event.objects.create(
                public_id=public_id, org_id=org_id, type=type, key=key[:200], sequence=sequence, created_at=now,
                payload={
                    "id": public_id, "type": type, "created": iso_z(now),
                    "sequence": sequence, "livemode": settings.STRIPE_LIVE_MODE,
                    "org": {"id": org.pk, "slug": org.slug}, "data": dict(data),
                },
            )
            # In the same transaction as the event: one commit, and no event without its deliveries.
            endpoints = [
                e for e in WebhookEndpoint.objects.filter(org_id=org_id, disabled_at__isnull=True) if e.wants(type)
            ]
            deliveries = Delivery.objects.bulk_create(
                [Delivery(event=event, endpoint=e, created_at=now, next_attempt_at=now) for e in endpoints]
            )
    except (_AlreadySent, IntegrityError):
        return None
    if deliveries:
        ids = [d.pk for d in deliveries]
        transaction.on_commit(lambda: tasks.deliver.delay(ids), robust=True)
    return event


def _sequence_next(org_id: int) -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO outbound_eventsequence (org_id, last) VALUES (%s, 1) "
            "ON CONFLICT (org_id) DO UPDATE SET last = outbound_eventsequence.last + 1 RETURNING last",
            [org_id],
        )
        return cursor.fetchone()[0]


def _events_clean(events: Any) -> list[str]:
    if not isinstance(events, list) or not events or not all(isinstance(e, str) for e in events):
        raise InvalidRequest('events must be a non-empty list of event types, or ["*"].', code="invalid_events")
    if "*" in events:
        return ["*"]
    unknown = sorted(set(events) - set(EVENT_TYPES))
    if unknown:
        raise InvalidRequest(f"Unknown event types: {', '.join(unknown)}.", code="invalid_events")
    return sorted(set(events))


def _url_clean(url: Any) -> str:
    if not isinstance(url, str) or not url or len(url) > 2000:
        raise InvalidRequest("url must be an http(s) URL of at most 2000 characters.", code="invalid_url")
    try:
        transport.url_check(url)
    except transport.TargetRefused as refused:
        raise InvalidRequest(str(refused), code="invalid_url") from None
    return url


@transaction.atomic
def endpoint_create(
    *, org: Organization, url: str, events: list[str], description: str = "", actor: Actor = None,
) -> WebhookEndpoint:
    """A new endpoint with a fresh secret (the caller shows it once)."""
    url, events = _url_clean(url), _events_clean(events)
    if WebhookEndpoint.objects.filter(org=org).count() >= MAX_ENDPOINTS_PER_ORG:
        raise InvalidRequest(f"An organization has at most {MAX_ENDPOINTS_PER_ORG} webhook endpoints.",
                             code="too_many_endpoints")
    endpoint = WebhookEndpoint.objects.create(
        org=org, url=url, events=events, description=(description or "")[:200], secret=secret_new(),
    )
    audit_record(org=org, action="webhook_endpoint.created", actor=actor, data={"endpoint": endpoint.pk, "url": url})
    return endpoint


@transaction.atomic
def endpoint_secret_rotate(*, endpoint: WebhookEndpoint, actor: Actor = None) -> WebhookEndpoint:
    """A new secret; the old one keeps signing beside it for 24 hours."""
    endpoint = WebhookEndpoint.objects.select_for_update().get(pk=endpoint.pk)
    endpoint.previous_secret = endpoint.secret
    endpoint.previous_secret_until = timezone.now() + ROTATION_OVERLAP
    endpoint.secret = secret_new()
    endpoint.save(update_fields=["secret", "previous_secret", "previous_secret_until"])
    audit_record(org=endpoint.org_id, action="webhook_endpoint.secret_rotated", actor=actor,
                 data={"endpoint": endpoint.pk})
    return endpoint


@transaction.atomic
def endpoint_enable(*, endpoint: WebhookEndpoint, actor: Actor = None) -> WebhookEndpoint:
    """Send to a disabled endpoint again (its failed deliveries can be sent again from the log)."""
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(disabled_at=None, failing_since=None)
    audit_record(org=endpoint.org_id, action="webhook_endpoint.enabled", actor=actor, data={"endpoint": endpoint.pk})
    endpoint.refresh_from_db()
    return endpoint


@transaction.atomic
def endpoint_delete(*, endpoint: WebhookEndpoint, actor: Actor = None) -> None:
    audit_record(org=endpoint.org_id, action="webhook_endpoint.deleted", actor=actor,
                 data={"endpoint": endpoint.pk, "url": endpoint.url})
    endpoint.delete()


@transaction.atomic
def delivery_resend(*, delivery: Delivery, actor: Actor = None) -> Delivery:
    """Send a delivery again now ("send again" in the log), whatever became of it."""
    if delivery.endpoint.disabled_at is not None:
        raise InvalidRequest("The endpoint is disabled; enable it first.", code="endpoint_disabled")
    now = timezone.now()
    Delivery.objects.filter(pk=delivery.pk).update(state=DeliveryState.PENDING, next_attempt_at=now, created_at=now)
    ids = [delivery.pk]
    transaction.on_commit(lambda: tasks.deliver.delay(ids), robust=True)
    delivery.refresh_from_db()
    return delivery
