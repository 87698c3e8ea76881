"""Tasks that belong to the service as a whole rather than to one app."""

import socket

from celery import shared_task
from django.core.cache import cache
from django.utils import timezone

HEARTBEAT_KEY = "health:worker-heartbeat"


@shared_task(name="billing_project.tasks.health_ping")
def health_ping() -> str:
    """Scheduled by beat, run by a worker: the heartbeat /healthz reports.

    Seeing a fresh heartbeat proves all three links: beat sends on schedule,
    the broker carries it, a worker runs it.
    """
    now = timezone.now()
    cache.set(HEARTBEAT_KEY, {"at": now.isoformat(), "worker": socket.gethostname()}, timeout=None)
    return now.isoformat()
