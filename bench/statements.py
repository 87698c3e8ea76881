"""PostgreSQL's side of one request, statement by statement: what `POST /api/v1/usage/events`,
`GET /api/v1/balance` and `POST /api/v1/usage/events/batch` (1,000 events) each run, how often
and for how long, and the rows each request writes.

pg_stat_statements would say this, but it must be in shared_preload_libraries (a server
restart). auto_explain needs no restart: it is loaded into this process's own database
session (`LOAD`, superuser), logs every statement's executor time, nested ones inside the
ledger's PL/pgSQL functions included, and sends it to this client as NOTICEs, so nothing
reaches the server's log and no other session is touched. It times execution only: parsing,
planning and the commit's WAL flush are outside it (the request's wall time shows them).

The requests go through the whole Django stack in process (test client, API-key auth, the
rate limit in Redis when REDIS_URL is set), one at a time, on one organization:

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/tollgate_bench REDIS_URL=redis://127.0.0.1:6379/9 \\
        .venv/bin/python bench/statements.py [--requests 500] [--batches 10]
"""

from __future__ import annotations

import argparse
import collections
import re
import time
import uuid

from _common import bench_orgs

# Functions whose statements are nested: their time is inside the statement that called them.
FUNCTIONS = ("usage_ledger_debit", "usage_ledger_lock", "usage_ledger_load", "usage_grants_to_burn")
TABLES = ("usage_usageevent", "usage_ledgerentry", "usage_ledgerallocation", "orgs_auditevent", "usage_grant",
          "usage_creditaccount", "usage_memberspend", "usage_keyspend", "accounts_orgapikey")

notices: list[str] = []


def _watch(sender, connection, **kwargs) -> None:
    """Load auto_explain into every new connection of this process and collect what it says."""
    raw = connection.connection
    raw.add_notice_handler(lambda diag: notices.append(diag.message_primary or ""))
    with raw.cursor() as cursor:
        cursor.execute("LOAD 'auto_explain'")
        for setting, value in [("log_min_duration", "0"), ("log_nested_statements", "on"), ("log_level", "notice"),
                               ("log_analyze", "on"), ("log_timing", "off"), ("log_wal", "on"),
                               ("log_format", "text")]:
            cursor.execute(f"SET auto_explain.{setting} = {value}")


def _normal(text: str) -> str:
    """One line, comments dropped, literals and numbers blanked: one key per statement,
    whatever its parameters. Comments go first (an apostrophe in one would pair with the
    next quote)."""
    text = re.sub(r"--[^\n]*", "", text)
    text = re.sub(r"\s+", " ", text).strip()
    text = re.sub(r"'(?:[^']|'')*'", "'…'", text)
    return re.sub(r"\b\d+(\.\d+)?\b", "N", text)


def table_writes() -> dict[str, tuple[int, int, int]]:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute("SELECT relname, n_tup_ins, n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables "
                       "WHERE relname = ANY(%s)", [list(TABLES)])
        return {name: (ins, upd, hot) for name, ins, upd, hot in cursor.fetchall()}


def phase(label: str, call, requests: int, nested: str, warm: int = 30) -> None:
    from django.db import connection

    for _ in range(warm):  # prepared statements, the rate card, the plan hint
        call()
    connection.close()  # the next connection loads auto_explain
    call()
    time.sleep(1.2)  # backends report table counts within a second: let the warm-up's arrive first
    before = table_writes()
    notices.clear()
    started = time.perf_counter()
    for _ in range(requests):
        call()
    wall = (time.perf_counter() - started) * 1000 / requests
    collected = list(notices)
    time.sleep(1.2)  # backends report table counts within a second
    after = table_writes()
    by_text: dict[str, list] = collections.defaultdict(lambda: [0, 0.0, 0, False])
    top_ms = 0.0
    wal = 0
    for message in collected:
        match = re.search(r"duration: ([\d.]+) ms", message)
        # The text runs from "Query Text:" to the plan's first node, the first line with a cost.
        text = re.search(r"Query Text:(.*?)\n[^\n]*\(cost=", message, re.S)
        if not match or not text:
            continue
        key = _normal(text.group(1))[:150]
        row = by_text[key]
        row[0] += 1
        row[1] += float(match.group(1))
        row[3] = _normal(text.group(1)) in nested
        if not row[3]:
            top_ms += float(match.group(1))
            wal_bytes = [int(b) for b in re.findall(r"WAL: .*?bytes=(\d+)", message)]
            if wal_bytes:
                row[2] += max(wal_bytes)
                wal += max(wal_bytes)
    print(f"{label}: {requests} requests, one at a time, in process")
    print(f"  wall time per request {wall:.2f} ms; PostgreSQL executor time per request {top_ms / requests:.3f} ms "
          f"(parse, plan and commit not included); WAL per request {wal / requests:.0f} bytes")
    # Foreign keys are checked at commit (deferred), by statements PostgreSQL runs itself.
    checks = sum(row[0] for text, row in by_text.items() if not row[3] and "FOR KEY SHARE OF x" in text)
    sent = sum(row[0] for text, row in by_text.items() if not row[3]) - checks
    print(f"  per request: {sent / requests:.1f} statements sent by the web process (one round trip each), "
          f"{checks / requests:.1f} foreign-key checks at commit")
    print(f"  {'calls/req':>9} {'ms/req':>7} {'ms/call':>7} {'WAL B/req':>9}  statement ('  ↳' = inside a ledger function)")
    for key, (calls, ms, wal_bytes, inner) in sorted(by_text.items(), key=lambda kv: -kv[1][1])[:20]:
        print(f"  {calls / requests:9.2f} {ms / requests:7.3f} {ms / calls:7.3f} "
              f"{wal_bytes / requests if not inner else 0:9.0f}  {'  ↳ ' if inner else ''}{key}")
    changed = []
    for table in TABLES:
        ins = after[table][0] - before[table][0]
        upd = after[table][1] - before[table][1]
        hot = after[table][2] - before[table][2]
        if ins or upd:
            changed.append(f"{table} +{ins / requests:.2f} ins, {upd / requests:.2f} upd ({hot / requests:.2f} HOT)")
    print("  rows written per request: " + ("; ".join(changed) if changed else "none"), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--batches", type=int, default=10, help="batch requests of 1,000 events; 0: none")
    args = parser.parse_args()

    from django.conf import settings
    from django.db import connection
    from django.db.backends.signals import connection_created
    from django.test import Client

    from accounts.models import OrgAPIKey

    settings.ALLOWED_HOSTS = ["*"]
    (org_id,) = bench_orgs("bench-statements", 1)
    _key, secret = OrgAPIKey.objects.create_key(org_id=org_id, name="statements", scopes=["read", "usage:write"])
    with connection.cursor() as cursor:
        cursor.execute("SELECT string_agg(prosrc, ' ') FROM pg_proc WHERE proname = ANY(%s)", [list(FUNCTIONS)])
        (source,) = cursor.fetchone()
    # PL/pgSQL runs `SELECT x INTO v FROM ...` as `SELECT x FROM ...`.
    nested = re.sub(r"(?<!INSERT) INTO (v_\w+|a|account|result)\b", "", _normal(source))
    connection_created.connect(_watch)
    client = Client()
    auth = {"HTTP_AUTHORIZATION": f"Bearer {secret}"}
    run = uuid.uuid4().hex[:8]
    count = iter(range(10**9))

    def event():
        answer = client.post("/api/v1/usage/events", {
            "idempotency_key": f"st-{run}-{next(count)}", "meter": "ai.output_tokens", "model": "gpt-5-mini",
            "quantity": 1000, "workflow_run_id": "bench"}, content_type="application/json", **auth)
        assert answer.status_code == 201, answer.content

    def balance():
        answer = client.get("/api/v1/balance", **auth)
        assert answer.status_code == 200, answer.content

    def batch():
        n = next(count)
        answer = client.post("/api/v1/usage/events/batch", {"events": [
            {"idempotency_key": f"st-{run}-{n}-{i}", "meter": "ai.output_tokens", "model": "gpt-5-mini",
             "quantity": 1000, "workflow_run_id": f"bench-{n}"} for i in range(1000)]},
            content_type="application/json", **auth)
        assert answer.status_code == 200 and answer.json()["recorded"] == 1000, answer.content[:300]

    phase("POST /api/v1/usage/events (one org, API key, no member)", event, args.requests, nested)
    phase("GET /api/v1/balance", balance, args.requests, nested)
    if args.batches:
        phase("POST /api/v1/usage/events/batch (1,000 events)", batch, args.batches, nested, warm=3)


if __name__ == "__main__":
    main()
