"""Prometheus metrics: what every process counts, and how /metrics reads them all.

Every metric is named `tollgate_...` and defined here, in the kernel, so any
app may count without importing another. Counting is an increment in the
process's memory-mapped file (prometheus-client's multiprocess mode): no query,
no Redis trip, no lock shared between processes.

Processes write under METRICS_DIR, one subdirectory per kind of process
(`web`, `worker`, `beat`; settings.py picks it and sets PROMETHEUS_MULTIPROC_DIR
before anything imports prometheus_client). Each kind cleans its own
subdirectory when it starts (`directory_clean`: gunicorn's `on_starting`,
Celery's `worker_init` and `beat_init`), so a restart neither keeps stale
files forever nor deletes a running sibling's. `/metrics` merges the files of
every subdirectory (docs/operations.md, "Metrics").
"""

from __future__ import annotations

import hmac
import os
from collections.abc import Iterable
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

# --- requests --------------------------------------------------------------------------

# Labelled by the URL pattern's name (`api:usage-events`), never the raw path,
# so ids in URLs cannot grow the number of series.
REQUEST_SECONDS = Histogram(
    "tollgate_http_request_duration_seconds", "Time to answer a request, by route name and method.",
    ["route", "method"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
REQUESTS = Counter(
    "tollgate_http_requests", "Requests answered, by route name, method and status class.",
    ["route", "method", "status"],
)
# Every refusal rendered in the error envelope (HTTP answers, refused batch
# items and MCP tool errors alike), by status and stable code: the 402s by code.
API_ERRORS = Counter("tollgate_api_errors", "Refusals in the error envelope, by HTTP status and code.",
                     ["status", "code"])

# --- the ledger (fed by usage's seams) -------------------------------------------------

# Counted where they are answered (the REST API's single and batch endpoints, the
# MCP tool), by result: recorded, replayed (an idempotency key seen before) or
# refused (a batch item; a refused single event is an API error instead).
USAGE_EVENTS = Counter("tollgate_usage_events", "Usage events answered, by surface and result.",
                       ["surface", "result"])
LEDGER_WRITES = Counter("tollgate_ledger_writes", "Ledger writes (balance changes announced).")
CREDITS_DEBITED = Counter(
    "tollgate_credits_debited_micros",
    "Micro-credits taken off balances: usage, captures, expiries, claw-backs, transfers out.",
)
CREDITS_GRANTED = Counter("tollgate_credits_granted_micros", "Micro-credits added as new grants, by source.",
                          ["source"])
LINES_CROSSED = Counter("tollgate_balance_lines_crossed", "Balances crossing the low line or zero, by line.",
                        ["line"])
HOLDS = Counter("tollgate_holds", "Holds created and closed, by event.", ["event"])

# --- the edges -------------------------------------------------------------------------

STRIPE_WEBHOOKS = Counter("tollgate_stripe_webhooks", "Stripe webhook deliveries received, by result.", ["result"])
OUTBOUND_DELIVERIES = Counter("tollgate_outbound_delivery_attempts",
                              "Attempts to deliver a signed event to a platform's endpoint, by result.", ["result"])
TASK_FAILURES = Counter("tollgate_celery_task_failures", "Celery tasks that raised, by task name.", ["task"])
TASK_RETRIES = Counter("tollgate_celery_task_retries", "Celery tasks that asked to be retried, by task name.", ["task"])

KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def request_observed(*, route: str, method: str, status: int, seconds: float) -> None:
    method = method if method in KNOWN_METHODS else "OTHER"
    REQUEST_SECONDS.labels(route, method).observe(seconds)
    REQUESTS.labels(route, method, f"{status // 100}xx").inc()


def api_error_counted(*, status: int, code: str) -> None:
    API_ERRORS.labels(str(status), code).inc()


# --- the directory ---------------------------------------------------------------------


def directory_clean(path: str | os.PathLike | None = None) -> None:
    """Remove what earlier processes of this kind left in `path` (this process's
    subdirectory by default), keeping this process's own files. Run once as the
    kind of process starts, before it forks its workers."""
    directory = Path(path or os.environ["PROMETHEUS_MULTIPROC_DIR"])
    directory.mkdir(parents=True, exist_ok=True)
    own = f"_{os.getpid()}.db"
    for file in directory.glob("*.db"):
        if not file.name.endswith(own):
            file.unlink(missing_ok=True)


class AllProcesses(Collector):
    """Every process's counters, merged across the kinds' subdirectories of `root`."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def collect(self) -> Iterable[Metric]:
        files = sorted(str(f) for f in self.root.glob("*/*.db"))
        return MultiProcessCollector.merge(files, accumulate=True)


def exposition(root: Path, extra: Iterable[Collector] = ()) -> bytes:
    """The text format for a scrape: every process's counters and `extra`,
    the figures measured at scrape time."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(AllProcesses(root))
    for collector in extra:
        registry.register(collector)
    return generate_latest(registry)


def bearer_matches(header: str, token: str) -> bool:
    """Whether an Authorization header carries `Bearer <token>`, compared in constant time."""
    scheme, _, given = header.partition(" ")
    return bool(token) and scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())
