import logging
from collections.abc import Callable, Iterable
from datetime import datetime

from django.conf import settings
from django.core.cache import cache
from django.db import DatabaseError, connection
from django.http import Http404, HttpResponse, JsonResponse
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.views.decorators.csrf import csrf_exempt
from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from billing_project import metrics
from billing_project.tasks import HEARTBEAT_KEY
from outbound import selectors as outbound_selectors
from usage import selectors as usage_selectors

logger = logging.getLogger(__name__)


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


@csrf_exempt  # a POST is the same 404 as anywhere unknown, not a CSRF 403 that shows the address exists
def metrics_scrape(request):
    """Prometheus's scrape: every process's counters and the lags measured now.

    Only a GET with `Authorization: Bearer <METRICS_TOKEN>`. Without the
    setting, with a missing or wrong token, or with another method, it is the
    same 404 as an unknown address, so the endpoint tells a stranger nothing,
    not even that it exists."""
    token = settings.METRICS_TOKEN
    authorized = bool(token) and metrics.bearer_matches(request.headers.get("Authorization", ""), token)
    if not authorized or request.method not in ("GET", "HEAD"):
        raise Http404
    body = metrics.exposition(settings.METRICS_DIR, extra=[Lags()])
    return HttpResponse(body, content_type=CONTENT_TYPE_LATEST)


class Lags(Collector):
    """How far behind the background work is, read at scrape time: two index
    look-ups and one cache read per scrape, nothing on the request path."""

    def collect(self) -> Iterable[GaugeMetricFamily]:
        now = timezone.now()
        yield _age("tollgate_outbound_oldest_due_delivery_age_seconds",
                   "How long the longest-waiting due outbound delivery has waited (0: none due).",
                   outbound_selectors.delivery_oldest_due_at, now)
        yield _age("tollgate_holds_oldest_overdue_age_seconds",
                   "How long ago the longest-overdue open hold expired without being released (0: none).",
                   usage_selectors.hold_oldest_overdue_at, now)
        try:
            beat = cache.get(HEARTBEAT_KEY)
        except Exception:  # noqa: BLE001  the cache (Redis) down: the counters still go out
            logger.exception("/metrics could not read the worker heartbeat")
            beat = None
        heartbeat = GaugeMetricFamily(
            "tollgate_worker_heartbeat_age_seconds",
            "Seconds since a worker last ran beat's health ping (no sample: never seen).",
        )
        if beat:
            heartbeat.add_metric([], max((now - parse_datetime(beat["at"])).total_seconds(), 0.0))
        yield heartbeat


def _age(name: str, documentation: str, read: Callable[[datetime], datetime | None], now: datetime) -> GaugeMetricFamily:
    """A gauge of how long ago `read(now)` was; no sample when the database cannot
    say, so that the counters still reach Prometheus while it is down."""
    family = GaugeMetricFamily(name, documentation)
    try:
        since = read(now)
    except DatabaseError:
        logger.exception("/metrics could not read %s", name)
        return family
    family.add_metric([], max((now - since).total_seconds(), 0.0) if since else 0.0)
    return family
