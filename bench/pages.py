"""How fast the billing pages render for an organization with a million ledger entries
and the usage events behind them.

    export DATABASE_URL=postgres://postgres@127.0.0.1:5432/tollgate_bench   # a migrated database
    flock /tmp/tollgate-bench.lock .venv/bin/python bench/pages.py [--entries 1000000] [--runs 15]

The first run builds the org `bench-pages` (an owner and four members, one
purchase grant, then N-1 usage, grant, transfer-in and expiry entries spread
over a year, bulk-inserted with one INSERT ... SELECT generate_series), then
ANALYZEs; later runs reuse it. Each page is rendered through Django's test
client with every middleware and context processor, as a signed-in owner;
figures are wall-clock milliseconds (median and 90th percentile of --runs).

Behind each usage entry are three usage events (an action, output tokens of
one of two models, compute seconds) of one workflow run per four entries,
adding up to the entry's amount, as a batch is debited (~2.9 million events
for a million entries). The usage pages are timed twice: before the
roll-up has run (the charts add up every event) and after `usage_rollup`.

The bench org's entries are synthetic: the account's cached balance equals
the sum of its entries, but the grant's allocations are not written, so
`ledger_reconcile` would report that org. Use a database of its own.
"""

from __future__ import annotations

import argparse
import re
import time
import warnings
from datetime import timedelta

warnings.filterwarnings("ignore", message="No directory at")  # WhiteNoise, without collectstatic

# Django against DATABASE_URL (refusing to start without one), as every bench script.
from _common import C, median, percentile  # noqa: E402

from django.db import connection, transaction  # noqa: E402
from django.test import Client  # noqa: E402
from django.utils import timezone  # noqa: E402

from accounts.models import User  # noqa: E402
from orgs.models import Membership, Organization, Role  # noqa: E402
from usage import selectors, services  # noqa: E402
from usage.models import CreditAccount, GrantSource, LedgerEntry  # noqa: E402

SLUG = "bench-pages"


def build(entries: int) -> tuple[Organization, User, list[User]]:
    org = Organization.objects.filter(slug=SLUG).first()
    if org is not None:
        have = LedgerEntry.objects.filter(account__org=org).count()
        if have >= entries:
            owner = Membership.objects.get(org=org, role=Role.OWNER).user
            members = [m.user for m in Membership.objects.filter(org=org).select_related("user").order_by("pk")]
            print(f"reusing {SLUG}: {have:,} entries")
            return org, owner, members
        raise SystemExit(f"{SLUG} exists with {have:,} entries (< {entries:,}); use a fresh database.")

    started = time.perf_counter()
    from orgs.services import org_create

    owner = User.objects.create_user(email="owner@bench-pages.test", password=None, full_name="Bench Owner")
    org = org_create(name="Bench Pages", owner=owner, slug=SLUG)
    members = [owner]
    for i in range(4):
        user = User.objects.create_user(email=f"member{i}@bench-pages.test", password=None, full_name=f"Member {i}")
        Membership.objects.create(org=org, user=user, role=Role.MEMBER)
        members.append(user)
    first = services.credits_grant(org=org, amount_micros=10**9 * C, source=GrantSource.PURCHASE, reason="Bench pack")
    account = CreditAccount.objects.get(org=org)
    member_ids = "ARRAY[" + ",".join(str(m.pk) for m in members) + "]::bigint[]"
    # One row per i: mostly usage by one of five members, every 50th a grant,
    # every 997th a transfer in (rare kind), every 1009th an expiry; times
    # increase by ~31.5 s so N entries span a year ending now.
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            f"""
            INSERT INTO usage_ledgerentry
                (account_id, kind, amount_micros, balance_after_micros, member_id, stripe_object_id,
                 reason, idempotency_key, metadata, created_at)
            SELECT %(account)s,
                   k.kind,
                   k.amount,
                   %(start)s + (i * -2500000::bigint),
                   CASE WHEN k.kind = 'usage' THEN ({member_ids})[1 + i %% 5] END,
                   '',
                   CASE k.kind WHEN 'usage' THEN 'Workflow run ' || i WHEN 'grant' THEN 'Pack' ELSE '' END,
                   NULL,
                   '{{}}'::jsonb,
                   now() - interval '365 days' + (i * (interval '365 days' / %(n)s))
            FROM generate_series(1, %(n)s - 1) AS i,
                 LATERAL (SELECT CASE WHEN i %% 997 = 0 THEN 'transfer_in'
                                      WHEN i %% 1009 = 0 THEN 'expiry'
                                      WHEN i %% 50 = 0 THEN 'grant'
                                      ELSE 'usage' END AS kind,
                                 -2500000::bigint AS amount) AS k
            """,
            {"account": account.pk, "start": first.balance_after_micros, "n": entries},
        )
        cursor.execute(
            "UPDATE usage_creditaccount SET balance_micros = (SELECT sum(amount_micros) FROM usage_ledgerentry"
            " WHERE account_id = %s) WHERE id = %s",
            [account.pk, account.pk],
        )
        cursor.execute("ANALYZE usage_ledgerentry")
    print(f"built {SLUG}: {entries:,} entries in {time.perf_counter() - started:.1f} s")
    build_events(account.pk)
    return org, owner, members


def build_events(account_id: int) -> None:
    """Three usage events behind each usage entry, summing to its 2.5 credits."""
    from usage.models import Meter

    started = time.perf_counter()
    meters = dict(Meter.objects.values_list("code", "pk"))
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO usage_usageevent
                (account_id, member_id, meter_id, model, quantity, credits_per_unit, credits_micros,
                 balance_after_micros, billing_mode, provider_key_id, workflow_run_id, occurred_at, created_at,
                 metadata, idempotency_key, request_fingerprint, ledger_entry_id, hold_id)
            SELECT e.account_id, e.member_id, m.meter_id,
                   CASE WHEN m.k = 2 THEN (CASE WHEN e.id %% 3 = 0 THEN 'gpt-5' ELSE 'gpt-5-mini' END) ELSE '' END,
                   m.quantity, m.per_unit, m.credits, e.balance_after_micros, 'platform_key', NULL,
                   'run-' || (e.id / 4), e.created_at, e.created_at, '{}'::jsonb, 'bench-' || e.id || '-' || m.k, '',
                   e.id, NULL
            FROM usage_ledgerentry e
            CROSS JOIN (VALUES (1, %(small)s, 1::numeric, 1::numeric, 1000000::bigint),
                               (2, %(tokens)s, 3000::numeric, 0.0003::numeric, 900000::bigint),
                               (3, %(compute)s, 300::numeric, 0.002::numeric, 600000::bigint))
                 AS m(k, meter_id, quantity, per_unit, credits)
            WHERE e.account_id = %(account)s AND e.kind = 'usage'
            ORDER BY e.id, m.k
            """,
            {"account": account_id, "small": meters["action.small"], "tokens": meters["ai.output_tokens"],
             "compute": meters["compute.seconds"]},
        )
        # What autovacuum (autosummarize) would soon do for ranges filled by normal traffic.
        cursor.execute("SELECT brin_summarize_new_values('usage_event_created_brin')")
        cursor.execute("ANALYZE usage_usageevent")
        cursor.execute("SELECT count(*) FROM usage_usageevent WHERE account_id = %s", [account_id])
        count = cursor.fetchone()[0]
    print(f"built {count:,} usage events in {time.perf_counter() - started:.1f} s")


def _explain(sql: str, params) -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN (ANALYZE, COSTS OFF) " + sql, params)
        return [row[0] for row in cursor.fetchall()]


def _executed(lines: list[str]) -> str:
    line = next((line for line in lines if line.startswith("Execution Time")), "")
    return line.lower().replace("execution time: ", "")


def plan_of(queries: list[tuple[str, tuple]]) -> str:
    """How PostgreSQL runs the page's reads: the ledger read's index and time, and
    the usage charts' statements (chart, workflow runs) and their times."""
    parts = []
    reads = [(sql, params) for sql, params in queries if 'FROM "usage_ledgerentry"' in sql]
    if reads:
        lines = _explain(*reads[-1])
        scans = sorted({m.group(1) for line in lines if (m := re.search(r"using (\w+) on usage_ledgerentry", line))})
        parts.append(f"ledger {', '.join(scans) or 'no index (sequential scan)'} {_executed(lines)}")
    charts = [(sql, params) for sql, params in queries if "usage_usagerollup" in sql or "usage_usagerunrollup" in sql]
    if charts:
        parts.append("charts " + " + ".join(_executed(_explain(sql, params)) for sql, params in charts))
    return "; ".join(parts) or "no ledger or usage read"


def timed(client: Client, url: str, runs: int) -> tuple[float, float, int, int, str]:
    response = client.get(url)  # warm: templates compiled, connection open
    assert response.status_code == 200, (url, response.status_code)
    queries: list[tuple[str, tuple]] = []

    def record(execute, sql, params, many, context):
        queries.append((sql, params))
        return execute(sql, params, many, context)

    with connection.execute_wrapper(record):
        client.get(url)
    samples = []
    for _ in range(runs):
        t0 = time.perf_counter()
        response = client.get(url)
        samples.append((time.perf_counter() - t0) * 1000)
    return median(samples), percentile(samples, 90), len(queries), len(response.content), plan_of(queries)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()

    org, owner, members = build(args.entries)
    client = Client()
    client.force_login(owner)
    account_id = org.credit_account.pk
    # A cursor in the middle of the history: page ~10,000 of 50 entries.
    middle = LedgerEntry.objects.filter(account_id=account_id).order_by("-created_at", "-id")[args.entries // 2]
    cursor = selectors.cursor_for(middle)
    day = middle.created_at.date()
    month_end = day + timedelta(days=30)

    usage_cases = [
        ("usage: daily 30 d by meter (default)", "/billing/usage/"),
        ("usage: daily 30 d by workflow run", "/billing/usage/?by=workflow_run"),
        ("usage: weekly 12 w by model", "/billing/usage/?chart=week&by=model"),
        ("usage: monthly 12 m by meter", "/billing/usage/?chart=month&by=meter"),
        ("usage: monthly 12 m by member", "/billing/usage/?chart=month&by=member"),
        ("usage: monthly 12 m by workflow run", "/billing/usage/?chart=month&by=workflow_run"),
    ]
    from usage.models import RollupCursor, UsageRollup, UsageRunRollup
    from usage.services.rollup import usage_rollup

    print(f"\n{args.entries:,} entries on one org; {args.runs} runs each; PostgreSQL {connection.pg_version}")
    header = f"{'page':44} {'median ms':>10} {'p90 ms':>8} {'queries':>8} {'KiB':>6}  query plan"
    if not RollupCursor.objects.exists():
        print("\nbefore the roll-up (the charts add up every event)")
        print(header)
        for label, url in usage_cases[:1] + usage_cases[3:4]:
            median_ms, p90_ms, queries, size, plan = timed(client, url, max(3, args.runs // 5))
            print(f"{label:44} {median_ms:10.1f} {p90_ms:8.1f} {queries:8d} {size / 1024:6.1f}  {plan}")
        t0 = time.perf_counter()
        added = usage_rollup(now=timezone.now() + timedelta(minutes=5), max_windows=1000)
        print(f"\nroll-up of {added:,} events: {time.perf_counter() - t0:.1f} s; "
              f"{UsageRollup.objects.count():,} day rows, {UsageRunRollup.objects.count():,} run-day rows")
        with connection.cursor() as db:
            db.execute("ANALYZE usage_usagerollup; ANALYZE usage_usagerunrollup")
    print("\nafter the roll-up")
    print(header)
    for label, url in usage_cases:
        median_ms, p90_ms, queries, size, plan = timed(client, url, args.runs)
        print(f"{label:44} {median_ms:10.1f} {p90_ms:8.1f} {queries:8d} {size / 1024:6.1f}  {plan}")

    cases = [
        ("overview /billing/", "/billing/"),
        ("history, newest page", "/billing/usage/"),
        ("history, page ~10,000 (cursor)", f"/billing/usage/?older={cursor}"),
        ("history, kind=transfer_in (rare)", "/billing/usage/?kind=transfer_in"),
        ("history, kind=usage", "/billing/usage/?kind=usage"),
        ("history, one member", f"/billing/usage/?member={members[2].pk}"),
        ("history, one member, kind=grant (none)", f"/billing/usage/?member={members[2].pk}&kind=grant"),
        ("history, one day", f"/billing/usage/?since={day}&until={day}"),
        ("history, kind=expiry, 30 days", f"/billing/usage/?kind=expiry&since={day}&until={month_end}"),
        ("send credits /billing/send/", "/billing/send/"),
        ("top up /billing/top-up/", "/billing/top-up/"),
        ("plans /billing/plans/", "/billing/plans/"),
        ("invoices /billing/invoices/", "/billing/invoices/"),
        ("settings: auto top-up", "/billing/settings/auto-top-up/"),
        ("settings: alerts", "/billing/settings/alerts/"),
        ("settings: members (spend this month)", "/billing/members/"),
    ]
    print("\nthe other pages")
    print(header)
    for label, url in cases:
        median_ms, p90_ms, queries, size, plan = timed(client, url, args.runs)
        print(f"{label:44} {median_ms:10.1f} {p90_ms:8.1f} {queries:8d} {size / 1024:6.1f}  {plan}")

    # CSV export: every matching row streamed; time and rate for one member's share.
    url = f"/billing/usage/export.csv?member={members[2].pk}"
    t0 = time.perf_counter()
    response = client.get(url)
    first_chunk_ms = None
    rows = 0
    for chunk in response.streaming_content:
        if first_chunk_ms is None:
            first_chunk_ms = (time.perf_counter() - t0) * 1000
        rows += chunk.count(b"\n")
    seconds = time.perf_counter() - t0
    print(
        f"\nCSV export, one member: {rows - 1:,} rows in {seconds:.1f} s "
        f"({(rows - 1) / seconds:,.0f} rows/s), first bytes after {first_chunk_ms:.0f} ms"
    )


if __name__ == "__main__":
    main()
