"""How fast the staff's Business figures page renders on a large installation:
10,000 organizations and a million ledger entries.

    flock /tmp/tollgate-bench.lock .venv/bin/python bench/backoffice_figures.py [--runs 20]

It works in a database of its own, `tollgate_bench_figures` on the local
server (or DATABASE_URL when set: never a real one, the rows bypass the
services), created and migrated on first use. The first run seeds it with one
INSERT ... SELECT generate_series per table, in seconds:

- 10,000 organizations with a credit account and billing state (60% Free,
  10% on a trial, 25% paying: Starter, Pro and Max, monthly and yearly, 5% past
  due), and a year of plan and status history (three changes each);
- 1,000,000 ledger entries over the last year (85% usage, 9% grants, 3%
  expiries, 2% adjustments, 1% clawbacks) and ~56,000 grants (monthly plan
  allowances and purchases);
- the usage roll-ups behind those usage entries (by day, meter and model),
  5,000 usage events past the roll-up's cursor, 300 runaway occurrences;
- 20,000 purchases, 6,000 auto top-up attempts, 30,000 Stripe invoice events
  and 30,000 webhook deliveries in, 50,000 outbound deliveries.

Then it ANALYZEs, renders /admin/backoffice/figures/ as a superuser through
Django's test client (every middleware), and prints the median and 95th
percentile of --runs renders, and each section's own time.
"""

from __future__ import annotations

import argparse
import os
import time
import warnings
from urllib.parse import urlparse

import psycopg

warnings.filterwarnings("ignore", message="No directory at")  # WhiteNoise, without collectstatic

DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/tollgate_bench_figures"
os.environ.setdefault("DATABASE_URL", DEFAULT_URL)
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench_settings")


def _ensure_database(url: str) -> None:
    name = urlparse(url).path.lstrip("/")
    admin_url = url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')
            print(f"created database {name}")


_ensure_database(os.environ["DATABASE_URL"])

from _common import median, percentile  # noqa: E402  (Django against DATABASE_URL)

from django.core.management import call_command  # noqa: E402
from django.db import connection, transaction  # noqa: E402
from django.test import Client  # noqa: E402

ORGS = 10_000
ENTRIES = 1_000_000
PREFIX = "bench-fig"


def seeded() -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM orgs_organization WHERE slug LIKE %s", [f"{PREFIX}-%"])
        return cursor.fetchone()[0] >= ORGS


def seed() -> None:
    started = time.perf_counter()
    statements = [
        # Organizations, their accounts and billing states (the trigger writes each state's first change).
        f"""INSERT INTO orgs_organization (name, slug, is_personal, member_usage, pause_on_runaway, created_at)
            SELECT 'Bench org ' || i, '{PREFIX}-' || lpad(i::text, 5, '0'), false, 'pool', false,
                   now() - interval '400 days' + i * interval '30 minutes'
            FROM generate_series(1, {ORGS}) i""",
        f"""INSERT INTO usage_creditaccount (org_id, balance_micros, debt_micros, held_micros, plan_code,
                overage_allowed, features, updated_at)
            SELECT id, (id % 5000) * 1000000, CASE WHEN id % 97 = 0 THEN 5000000 ELSE 0 END, 0, 'free',
                   false, '{{}}', now()
            FROM orgs_organization WHERE slug LIKE '{PREFIX}-%'""",
        f"""INSERT INTO billing_billingstate (org_id, plan_code, status, "interval", subscription_id,
                subscription_status, cancel_at_period_end, updated_at)
            SELECT o.id, s.plan, s.status, s.iv, '', '', false, now() - (o.id % 300) * interval '1 day'
            FROM orgs_organization o,
            LATERAL (SELECT CASE WHEN o.id % 20 < 12 THEN 'free' WHEN o.id % 20 < 14 THEN 'trialing'
                                 WHEN o.id % 20 = 19 THEN 'past_due' ELSE 'active' END AS status,
                            CASE WHEN o.id % 20 < 12 THEN 'free' WHEN o.id % 3 = 0 THEN 'pro'
                                 WHEN o.id % 11 = 0 THEN 'max' ELSE 'starter' END AS plan,
                            CASE WHEN o.id % 20 < 14 THEN '' WHEN o.id % 4 = 0 THEN 'year' ELSE 'month' END AS iv) s
            WHERE o.slug LIKE '{PREFIX}-%'""",
        # A year of history: three earlier changes per organization.
        f"""INSERT INTO billing_billingstatechange (org_id, plan_code, status, "interval", previous_plan_code,
                previous_status, previous_interval, annual_cents, changed_at)
            SELECT o.id, CASE WHEN k % 2 = 0 THEN 'starter' ELSE 'free' END,
                   CASE WHEN k % 2 = 0 THEN 'active' ELSE 'free' END, 'month', '', '', '',
                   CASE WHEN k % 2 = 0 THEN 11988 ELSE 0 END,
                   now() - interval '365 days' + k * interval '90 days' + (o.id % 80) * interval '1 day'
            FROM orgs_organization o, generate_series(0, 2) k WHERE o.slug LIKE '{PREFIX}-%'""",
        # Grants: a plan allowance a month (paying orgs) and two purchases each.
        f"""INSERT INTO usage_grant (account_id, source, amount_micros, remaining_micros, frozen_micros, expires_at,
                priority, reference, created_at)
            SELECT a.id, g.source, g.amount, g.amount / 2, 0, g.expires, 30, 'bench', g.at
            FROM usage_creditaccount a JOIN orgs_organization o ON o.id = a.org_id,
            LATERAL (SELECT 'plan_allowance' AS source, 1000000000::bigint AS amount,
                            now() - m * interval '30 days' AS at, now() - (m - 1) * interval '30 days' AS expires
                     FROM generate_series(0, 11) m WHERE o.id % 20 >= 14
                     UNION ALL
                     SELECT 'purchase', 500000000, now() - p * interval '120 days' - (o.id % 90) * interval '1 day', NULL
                     FROM generate_series(0, 1) p) g
            WHERE o.slug LIKE '{PREFIX}-%'""",
        # A million entries over a year, spread over the accounts.
        f"""INSERT INTO usage_ledgerentry (account_id, kind, amount_micros, balance_after_micros, stripe_object_id,
                reason, idempotency_key, metadata, created_at)
            SELECT a.ids[1 + (i::bigint * 7919) % array_length(a.ids, 1)],
                   k.kind, CASE WHEN k.kind IN ('grant', 'adjustment') THEN 500000000 ELSE -2500000 END,
                   1000000000, '', '', NULL, '{{}}'::jsonb,
                   now() - interval '365 days' + i * (interval '365 days' / {ENTRIES})
            FROM (SELECT array_agg(a.id ORDER BY a.id) AS ids FROM usage_creditaccount a
                  JOIN orgs_organization o ON o.id = a.org_id WHERE o.slug LIKE '{PREFIX}-%') a,
                 generate_series(1, {ENTRIES}) i,
            LATERAL (SELECT CASE WHEN i % 100 = 0 THEN 'clawback' WHEN i % 50 = 1 THEN 'adjustment'
                                 WHEN i % 33 = 2 THEN 'expiry' WHEN i % 11 = 3 THEN 'grant'
                                 ELSE 'usage' END AS kind) k""",
        # The roll-ups behind the usage entries: by account, day, meter and model, written
        # day after day as usage_rollup writes them.
        """INSERT INTO usage_usagerollup (account_id, day, meter_id, model, member_id, credits_micros, quantity, events)
            SELECT e.account_id, (e.created_at AT TIME ZONE 'UTC')::date, m.id,
                   CASE WHEN e.id % 3 = 0 THEN 'gpt-5' WHEN e.id % 3 = 1 THEN 'gpt-5-mini' ELSE '' END,
                   NULL, sum(-e.amount_micros), count(*), count(*)
            FROM usage_ledgerentry e
            JOIN (SELECT id, row_number() OVER (ORDER BY id) - 1 AS n, count(*) OVER () AS c FROM usage_meter) m
              ON m.n = e.id % m.c
            WHERE e.kind = 'usage'
            GROUP BY 1, 2, 3, 4
            ORDER BY 2""",
        """INSERT INTO usage_rollupcursor (id, rolled_until, updated_at) VALUES (1, now() - interval '1 hour', now())
            ON CONFLICT (id) DO UPDATE SET rolled_until = EXCLUDED.rolled_until""",
        # Usage past the roll-up's cursor: the last hour's events.
        f"""INSERT INTO usage_usageevent (account_id, member_id, meter_id, model, quantity, credits_per_unit,
                credits_micros, balance_after_micros, billing_mode, provider_key_id, workflow_run_id, occurred_at,
                created_at, metadata, idempotency_key, request_fingerprint, ledger_entry_id, hold_id)
            SELECT a.id, NULL, (SELECT min(id) FROM usage_meter), 'gpt-5-mini', 1, 1, 1000000, 0, 'platform_key', NULL,
                   '', now() - i * interval '0.5 second', now() - i * interval '0.5 second', '{{}}'::jsonb,
                   'bench-fig-' || i, '', NULL, NULL
            FROM generate_series(1, 5000) i
            JOIN usage_creditaccount a ON a.id = (SELECT min(id) FROM usage_creditaccount) + i % {ORGS}""",
        f"""INSERT INTO usage_runawayoccurrence (org_id, api_key_prefix, hour, window_start, window_end, spend_micros,
                baseline_micros, baseline_hours, multiple, paused, created_at)
            SELECT o.id, '', date_trunc('hour', now() - i * interval '3 hours'), now() - i * interval '3 hours',
                   now() - i * interval '3 hours', 1000000000, 1000000, 168, 10, i % 4 = 0, now() - i * interval '3 hours'
            FROM generate_series(1, 300) i JOIN orgs_organization o ON o.slug = '{PREFIX}-' || lpad((i * 31)::text, 5, '0')""",
        # Payments.
        f"""INSERT INTO billing_purchase (org_id, kind, pack_id, credits_micros, amount_cents, discount_cents,
                promotion_code, currency, grant_id, simulated, created_at)
            SELECT a.org_id, 'pack', (SELECT min(id) FROM billing_pack), g.amount_micros, 500, 0, '', 'usd', g.id,
                   false, g.created_at
            FROM usage_grant g JOIN usage_creditaccount a ON a.id = g.account_id
            WHERE g.source = 'purchase' AND g.reference = 'bench'""",
        f"""INSERT INTO billing_topupattempt (org_id, pack_id, credits_micros, amount_cents, idempotency_key, status,
                number, payment_intent_id, tax_calculation_id, failure_code, failure_message, created_at)
            SELECT o.id, (SELECT min(id) FROM billing_pack), 500000000, 500, 'bench-fig-' || i,
                   CASE WHEN i % 9 = 0 THEN 'failed' WHEN i % 23 = 0 THEN 'action_required' ELSE 'succeeded' END,
                   1 + (i % 5 = 0)::int, '', '', '', '', now() - i * interval '90 minutes'
            FROM generate_series(1, 6000) i JOIN orgs_organization o ON o.slug = '{PREFIX}-' || lpad((1 + i % {ORGS})::text, 5, '0')""",
        """INSERT INTO djstripe_event (id, livemode, created, metadata, djstripe_created, djstripe_updated,
                stripe_data, api_version, data, request_id, idempotency_key, type)
            SELECT 'evt_bench_' || i, false, now() - i * interval '15 minutes', '{}'::jsonb, now(), now(), '{}'::jsonb,
                   '2025-01-01', jsonb_build_object('object', jsonb_build_object('id', 'in_bench_' || (i / 2),
                       'amount_paid', CASE WHEN i % 7 = 0 THEN 0 ELSE 999 END)),
                   '', '', CASE WHEN i % 7 = 0 THEN 'invoice.payment_failed' ELSE 'invoice.paid' END
            FROM generate_series(1, 30000) i""",
        """INSERT INTO djstripe_webhookeventtrigger (remote_ip, headers, body, valid, processed, exception, traceback,
                djstripe_version, created, updated)
            SELECT '127.0.0.1', '{}'::jsonb, repeat('{"id": "evt"}', 50), i % 200 <> 0, i % 300 <> 0, '', '', '2.11.0',
                   now() - i * interval '15 minutes', now()
            FROM generate_series(1, 30000) i""",
        f"""INSERT INTO outbound_webhookendpoint (org_id, url, events, description, secret, previous_secret, created_at,
                failing_since, disabled_at)
            SELECT o.id, 'https://hooks.example.test/' || o.id, '["*"]'::jsonb, '', 'whsec', '', now(),
                   CASE WHEN o.id % 50 = 0 THEN now() - interval '1 day' END,
                   CASE WHEN o.id % 500 = 0 THEN now() END
            FROM orgs_organization o WHERE o.slug LIKE '{PREFIX}-%' AND o.id % 10 = 0""",
        f"""INSERT INTO outbound_event (public_id, org_id, type, key, sequence, payload, created_at)
            SELECT 'evt_bench_' || i, w.org_id, 'balance.low', 'k' || i, i, '{{}}'::jsonb, now() - i * interval '1 minute'
            FROM generate_series(1, 50000) i
            JOIN outbound_webhookendpoint w ON w.id = (SELECT min(id) FROM outbound_webhookendpoint)
                + i % (SELECT count(*) FROM outbound_webhookendpoint)""",
        """INSERT INTO outbound_delivery (event_id, endpoint_id, state, attempts, next_attempt_at, created_at)
            SELECT e.id, w.id, CASE WHEN e.id % 40 = 0 THEN 'failed' WHEN e.id % 90 = 0 THEN 'pending' ELSE 'succeeded' END,
                   1 + (e.id % 40 = 0)::int * 11, CASE WHEN e.id % 90 = 0 THEN now() END, e.created_at
            FROM outbound_event e JOIN outbound_webhookendpoint w ON w.org_id = e.org_id
            WHERE e.public_id LIKE 'evt_bench_%'""",
    ]
    with transaction.atomic(), connection.cursor() as cursor:
        for sql in statements:
            t0 = time.perf_counter()
            cursor.execute(sql)
            print(f"  {cursor.rowcount:>9,} rows  {time.perf_counter() - t0:5.1f} s  {sql.split('(')[0].strip()}")
    with connection.cursor() as cursor:
        for index in ("usage_event_created_brin", "entry_created_brin", "grant_created_brin"):
            cursor.execute("SELECT 1 FROM pg_class WHERE relname = %s", [index])
            if cursor.fetchone():
                cursor.execute("SELECT brin_summarize_new_values(%s)", [index])
        cursor.execute("VACUUM ANALYZE")
    print(f"seeded in {time.perf_counter() - started:.1f} s")


def sections() -> list[tuple[str, float]]:
    """Each selector's own time, for finding the slow one."""
    from backoffice.figures import selectors
    from django.utils import timezone

    period = selectors.period_for(None)
    out = []
    for name, read in [("revenue", selectors.mrr_movement), ("trials", selectors.trial_conversion), ("payments", selectors.payment_failures),
                       ("credits", selectors.credit_flows), ("patterns", selectors.usage_patterns),
                       ("health", lambda p: selectors.health_now(now=timezone.now()))]:
        samples = []
        for _ in range(5):
            t0 = time.perf_counter()
            read(period)
            samples.append((time.perf_counter() - t0) * 1000)
        out.append((name, median(samples)))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    call_command("migrate", verbosity=0)
    if not seeded():
        seed()
    from accounts.models import User

    admin = User.objects.filter(email="staff@bench-figures.test").first() or User.objects.create_superuser(
        email="staff@bench-figures.test", password=None, full_name="Bench Staff")
    client = Client()
    client.force_login(admin)
    url = "/admin/backoffice/figures/"
    response = client.get(url)  # warm: templates compiled, connection open
    assert response.status_code == 200, response.status_code
    samples = []
    for _ in range(args.runs):
        t0 = time.perf_counter()
        response = client.get(url)
        samples.append((time.perf_counter() - t0) * 1000)
        assert response.status_code == 200, response.status_code  # never time an error page
    with connection.cursor() as cursor:
        cursor.execute("SELECT (SELECT count(*) FROM orgs_organization), (SELECT count(*) FROM usage_ledgerentry)")
        orgs, entries = cursor.fetchone()
    print(f"{orgs:,} organizations, {entries:,} ledger entries")
    print(f"{url}: p50 {median(samples):.0f} ms, p95 {percentile(samples, 95):.0f} ms over {args.runs} renders "
          f"({len(response.content):,} bytes)")
    print("sections (median of 5): " + ", ".join(f"{name} {ms:.0f} ms" for name, ms in sections()))


if __name__ == "__main__":
    main()
