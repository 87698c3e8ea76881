"""Outbound's reads, each scoped to one organization (another org's object is a
404), and one deployment-wide figure for /metrics."""

from __future__ import annotations

from datetime import datetime

from django.db.models import QuerySet

from billing_project.errors import NotFound
from outbound.models import Delivery, DeliveryState, Event, WebhookEndpoint

RECENT_DELIVERIES = 50


def endpoints_for(org_id: int) -> QuerySet[WebhookEndpoint]:
    return WebhookEndpoint.objects.filter(org_id=org_id).order_by("id")


def endpoint_get(*, org_id: int, endpoint_id: int) -> WebhookEndpoint:
    endpoint = WebhookEndpoint.objects.filter(org_id=org_id, pk=endpoint_id).first()
    if endpoint is None:
        raise NotFound("No such webhook endpoint.", code="not_found")
    return endpoint


def deliveries_recent(endpoint: WebhookEndpoint, limit: int = RECENT_DELIVERIES) -> list[Delivery]:
    return list(
        endpoint.deliveries.select_related("event").prefetch_related("attempt_log").order_by("-id")[:limit]
    )


def delivery_get(*, org_id: int, delivery_id: int) -> Delivery:
    delivery = Delivery.objects.select_related("endpoint", "event").filter(
        endpoint__org_id=org_id, pk=delivery_id
    ).first()
    if delivery is None:
        raise NotFound("No such delivery.", code="not_found")
    return delivery


def events_for(org_id: int) -> QuerySet[Event]:
    return Event.objects.filter(org_id=org_id)


def delivery_oldest_due_at(now: datetime) -> datetime | None:
    """When the longest-waiting due delivery fell due, across every organization
    (the sweep's lag, for /metrics); None when nothing is due. Reads the partial
    index `outbound_delivery_due`."""
    return (
        Delivery.objects.filter(state=DeliveryState.PENDING, next_attempt_at__lte=now,
                                endpoint__disabled_at__isnull=True)
        .order_by("next_attempt_at").values_list("next_attempt_at", flat=True).first()
    )
