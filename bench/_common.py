"""Shared set-up for the benchmark scripts: Django against DATABASE_URL, bench orgs
with large balances, a way to run N worker processes from one start line, and
pgbench. Every script prints its figures; none of them is a test.

Run them on a database of their own, never a real one: pgbench writes rows
that bypass the ledger's services (DATABASE_URL=postgres://.../tollgate_bench).
"""

from __future__ import annotations

import multiprocessing as mp
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "billing_project.settings")
if not os.environ.get("DATABASE_URL"):
    sys.exit("Set DATABASE_URL to a scratch database, e.g. postgres://postgres@127.0.0.1:5432/tollgate_bench")

import django  # noqa: E402

django.setup()

from django.db import connections  # noqa: E402

C = 1_000_000
BIG = 10**15  # a billion credits: no bench run drains it


def bench_orgs(prefix: str, count: int) -> list[int]:
    """`count` organizations named prefix-0000..., each with a funded credit account; their ids."""
    from orgs.models import Organization
    from usage import services
    from usage.models import CreditAccount, GrantSource

    existing = dict(Organization.objects.filter(slug__startswith=f"{prefix}-").values_list("slug", "pk"))
    missing = [f"{prefix}-{i:04d}" for i in range(count) if f"{prefix}-{i:04d}" not in existing]
    if missing:
        Organization.objects.bulk_create([Organization(name=slug, slug=slug) for slug in missing])
        existing = dict(Organization.objects.filter(slug__startswith=f"{prefix}-").values_list("slug", "pk"))
    ids = [existing[f"{prefix}-{i:04d}"] for i in range(count)]
    funded = set(CreditAccount.objects.filter(org_id__in=ids, balance_micros__gt=BIG // 2).values_list("org_id", flat=True))
    for org_id in ids:
        if org_id not in funded:
            services.credits_grant(org=Organization(pk=org_id), amount_micros=BIG, source=GrantSource.PURCHASE,
                                   idempotency_key="bench:fund")
    return ids


def vacuum(*tables: str) -> None:
    """Start each measurement from the same state: dead row versions left by the
    previous one would slow whichever runs next, and a checkpoint still writing
    out the set-up's pages (a million seeded entries) would overlap the first."""
    from django.db import connection

    connections.close_all()
    with connection.cursor() as cursor:
        cursor.execute(f"VACUUM ANALYZE {', '.join(tables)}")
        cursor.execute("CHECKPOINT")
    connections.close_all()


def account_ids(org_ids: list[int]) -> list[int]:
    from usage.models import CreditAccount

    by_org = dict(CreditAccount.objects.filter(org_id__in=org_ids).values_list("org_id", "pk"))
    return [by_org[o] for o in org_ids]


def run_processes(target, args_for, clients: int, seconds: float) -> tuple[int, float, list[float]]:
    """Run target(i, start, deadline, queue, *args) in `clients` processes; (ops, elapsed, latencies)."""
    connections.close_all()
    ctx = mp.get_context("fork")
    queue = ctx.Queue()
    start_at = time.time() + 2.0 + clients * 0.05
    deadline = start_at + seconds
    procs = [ctx.Process(target=target, args=(i, start_at, deadline, queue, *args_for(i))) for i in range(clients)]
    for p in procs:
        p.start()
    results = [queue.get() for _ in procs]
    for p in procs:
        p.join()
    ops = sum(r[0] for r in results)
    latencies = [x for r in results for x in r[1]]
    return ops, seconds, latencies


def pgbench(script: str, clients: int, seconds: int, variables: dict[str, str] | None = None) -> float:
    """tps of `script` under pgbench at `clients` connections against DATABASE_URL."""
    url = urlparse(os.environ["DATABASE_URL"])
    with tempfile.NamedTemporaryFile("w", suffix=".sql", delete=False) as f:
        f.write(script)
    cmd = ["pgbench", "-n", "-c", str(clients), "-j", str(min(clients, 2)), "-T", str(seconds), "-f", f.name,
           "-h", url.hostname or "127.0.0.1", "-p", str(url.port or 5432), "-U", url.username or "postgres"]
    for name, value in (variables or {}).items():
        cmd += ["-D", f"{name}={value}"]
    cmd.append(url.path.lstrip("/"))
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    os.unlink(f.name)
    match = re.search(r"tps = ([\d.]+) \(without initial connection time\)", out)
    return float(match.group(1))


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")
