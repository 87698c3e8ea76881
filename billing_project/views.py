from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.http import JsonResponse
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from billing_project.tasks import HEARTBEAT_KEY


def healthz(request):
    """Liveness for load balancers and people: database reachable, and when a
    worker last ran the beat-scheduled health task."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    beat = cache.get(HEARTBEAT_KEY)
    worker = {"last_heartbeat": None, "age_seconds": None, "ok": False}
    if beat:
        age = (timezone.now() - parse_datetime(beat["at"])).total_seconds()
        worker = {
            "last_heartbeat": beat["at"],
            "worker": beat.get("worker"),
            "age_seconds": round(age),
            # Three missed pings in a row means worker or beat is down.
            "ok": age < 3 * settings.HEALTH_PING_SECONDS,
        }
    return JsonResponse({"database": "ok", "worker": worker})
