"""Attempting deliveries: claim, sign, POST, record, schedule the retry or give up.

Every attempt first claims its delivery with one UPDATE that pushes its
`next_attempt_at` past the timeout (a lease), so a task that runs twice, or
the sweep meeting a task, makes one attempt; a worker that dies mid-attempt
leaves a lease that runs out, and the sweep tries again (at least once).
"""

from __future__ import annotations

import json
import logging
import random
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from orgs.notifications import notification_send
from outbound import signing, transport
from outbound.models import Delivery, DeliveryAttempt, DeliveryState, Event, WebhookEndpoint
from outbound.notifications import ENDPOINT_DISABLED

log = logging.getLogger(__name__)

# Retries: 30 s, 1 min, 2 min, ... doubling up to 6 h between attempts, each
# ±20 % so that endpoints that failed together do not retry together; after
# three days of failing the delivery is given up, and an endpoint failing for
# three days is disabled.
RETRY_FIRST_SECONDS = 30
RETRY_MAX_SECONDS = 6 * 60 * 60
RETRY_JITTER = 0.2
GIVE_UP_AFTER = timedelta(days=3)
LEASE_EXTRA_SECONDS = 30


def retry_delay(attempts: int, *, rng: random.Random | None = None) -> timedelta:
    """How long to wait after the `attempts`-th failed attempt."""
    base = min(RETRY_FIRST_SECONDS * 2 ** (attempts - 1), RETRY_MAX_SECONDS)
    jitter = (rng or random).uniform(1 - RETRY_JITTER, 1 + RETRY_JITTER)
    return timedelta(seconds=base * jitter)


def event_body(event: Event) -> bytes:
    return json.dumps(event.payload, separators=(",", ":"), sort_keys=False).encode()


def secrets_in_force(endpoint: WebhookEndpoint, now: datetime) -> list[str]:
    in_force = [endpoint.secret]
    if endpoint.previous_secret and endpoint.previous_secret_until and endpoint.previous_secret_until > now:
        in_force.append(endpoint.previous_secret)
    return in_force


def delivery_attempt(*, delivery_id: int) -> DeliveryAttempt | None:
    """Make the due attempt of one delivery, if it is still pending, due and unclaimed."""
    now = timezone.now()
    timeout = settings.OUTBOUND_WEBHOOKS_TIMEOUT_SECONDS
    claimed = Delivery.objects.filter(
        pk=delivery_id, state=DeliveryState.PENDING, next_attempt_at__lte=now, endpoint__disabled_at__isnull=True,
    ).update(next_attempt_at=now + timedelta(seconds=timeout + LEASE_EXTRA_SECONDS))
    if not claimed:
        return None
    delivery = Delivery.objects.select_related("event__org", "endpoint").get(pk=delivery_id)
    endpoint, event = delivery.endpoint, delivery.event
    body = event_body(event)
    timestamp = int(now.timestamp())
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "Tollgate-Webhooks/1",
        "Tollgate-Event-Id": event.public_id,
        "Tollgate-Signature": signing.signature_header(secrets_in_force(endpoint, now), timestamp, body),
    }
    try:
        target = transport.target_resolve(endpoint.url)
    except transport.TargetRefused as refused:
        answer = transport.Answer(status_code=None, latency_ms=0, excerpt="", error=str(refused)[:300])
    else:
        answer = transport.post(target, body, headers, timeout=timeout)
    return _record(delivery, answer, now)


@transaction.atomic
def _record(delivery: Delivery, answer: transport.Answer, at: datetime) -> DeliveryAttempt:
    succeeded = answer.status_code is not None and 200 <= answer.status_code < 300
    attempt = DeliveryAttempt.objects.create(
        delivery=delivery, at=at, status_code=answer.status_code, latency_ms=answer.latency_ms,
        response_excerpt=answer.excerpt, error=answer.error, succeeded=succeeded,
    )
    attempts = delivery.attempts + 1
    if succeeded:
        Delivery.objects.filter(pk=delivery.pk).update(
            state=DeliveryState.SUCCEEDED, attempts=attempts, next_attempt_at=None, last_status_code=answer.status_code,
        )
        WebhookEndpoint.objects.filter(pk=delivery.endpoint_id, failing_since__isnull=False).update(failing_since=None)
        return attempt
    now = timezone.now()
    gave_up = now - delivery.created_at >= GIVE_UP_AFTER
    Delivery.objects.filter(pk=delivery.pk).update(
        state=DeliveryState.FAILED if gave_up else DeliveryState.PENDING, attempts=attempts,
        next_attempt_at=None if gave_up else now + retry_delay(attempts), last_status_code=answer.status_code,
    )
    endpoint = WebhookEndpoint.objects.select_for_update().select_related("org").get(pk=delivery.endpoint_id)
    if endpoint.failing_since is None:
        endpoint.failing_since = at
        endpoint.save(update_fields=["failing_since"])
    elif endpoint.disabled_at is None and now - endpoint.failing_since >= GIVE_UP_AFTER:
        endpoint_disable(endpoint, now)
    return attempt


def endpoint_disable(endpoint: WebhookEndpoint, now: datetime) -> None:
    """Stop sending to an endpoint that failed for three days, and tell its owners and admins."""
    endpoint.disabled_at = now
    endpoint.save(update_fields=["disabled_at"])
    log.warning("webhook endpoint %s of org %s disabled after failing since %s", endpoint.pk, endpoint.org_id,
                endpoint.failing_since)
    notification_send(ENDPOINT_DISABLED, org=endpoint.org, context={"endpoint": endpoint})


def deliveries_due(*, limit: int = 500) -> list[int]:
    """Ids of pending deliveries whose attempt is due, skipping any a worker holds locked."""
    with transaction.atomic():
        return list(
            Delivery.objects.select_for_update(skip_locked=True, of=("self",))
            .filter(state=DeliveryState.PENDING, next_attempt_at__lte=timezone.now(),
                    endpoint__disabled_at__isnull=True)
            .order_by("next_attempt_at").values_list("pk", flat=True)[:limit]
        )


__all__ = ["delivery_attempt", "deliveries_due", "retry_delay", "endpoint_disable"]
