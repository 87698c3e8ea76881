"""Bytes on disk per usage event and per ledger entry, measured on 10^6 of each.

First a few thousand events go through the real API (`POST /api/v1/usage/events`
in process, Django's test client, API-key auth): each writes a usage event, its
ledger entry, the entry's allocation and an audit row, shaped by the real
writer (`usage_ledger_debit`). Those rows are then cloned in SQL, each clone
with fresh ids, a fresh idempotency key of the same length and a later
timestamp, round-robin over 32 organizations as live traffic would arrive,
until there are `--events` usage events and as many ledger entries: the bytes
are those of real rows, inserted one index entry at a time as a live table
fills. Then VACUUM ANALYZE and the sizes: heap, TOAST and each index
separately (pg_relation_size), then the total (pg_total_relation_size), each
divided by the table's row count.

Run it on a database of its own (it writes a million rows outside the services):

    createdb -h 127.0.0.1 -U postgres tollgate_storage
    export DATABASE_URL=postgres://postgres@127.0.0.1:5432/tollgate_storage
    .venv/bin/python manage.py migrate
    flock /tmp/tollgate-bench.lock .venv/bin/python bench/storage.py [--events 1000000] [--real 3000]

Running it again tops the tables up to `--events` and prints the sizes again.
"""

from __future__ import annotations

import argparse
import random
import time
import uuid

from _common import bench_orgs

# What one event through POST /api/v1/usage/events writes, one row in each.
TABLES = ("usage_usageevent", "usage_ledgerentry", "usage_ledgerallocation", "orgs_auditevent")
ORGS = 32
CHUNK = 100_000


def members(org_ids: list[int]) -> dict[int, str]:
    """One member per bench organization (the e-mail half the events name)."""
    from accounts.models import User
    from orgs.models import Membership, Role

    emails = {}
    for org_id in org_ids:
        email = f"member-{org_id}@storage.example.com"
        user = User.objects.filter(email=email).first() or User.objects.create_user(email=email)
        Membership.objects.get_or_create(org_id=org_id, user=user, defaults={"role": Role.MEMBER})
        emails[org_id] = email
    return emails


def real_events(org_ids: list[int], count: int) -> int:
    """Record `count` events through the real endpoint, round-robin over the orgs; how many are there now."""
    from django.conf import settings
    from django.test import Client

    from accounts.models import OrgAPIKey
    from usage.models import UsageEvent

    have = UsageEvent.objects.filter(account__org_id__in=org_ids).count()
    if have >= count:
        return have
    settings.ALLOWED_HOSTS = ["*"]
    emails = members(org_ids)
    keys = {}
    for org_id in org_ids:
        _key, secret = OrgAPIKey.objects.create_key(org_id=org_id, name="storage", scopes=["read", "usage:write"])
        keys[org_id] = secret
    client = Client()
    rng = random.Random(15)
    meters = [("ai.output_tokens", "gpt-5-mini", 20_000), ("ai.input_tokens", "gpt-5-mini", 60_000),
              ("ai.output_tokens", "gpt-5-mini", 8_000), ("compute.seconds", "", 600)]
    started = time.monotonic()
    for n in range(count - have):
        org_id = org_ids[n % len(org_ids)]
        meter, model, most = rng.choice(meters)
        run = f"run-{uuid.uuid4().hex[:12]}"
        body = {"idempotency_key": f"{run}:llm-{rng.randint(1, 40)}", "meter": meter, "quantity": rng.randint(1, most),
                "workflow_run_id": run}
        if model:
            body["model"] = model
        if n % 2:
            body["member"] = emails[org_id]
        if n % 3 == 0:
            body["metadata"] = {"step": rng.choice(["plan", "draft", "review", "tool"])}
        answer = client.post("/api/v1/usage/events", body, content_type="application/json",
                             HTTP_AUTHORIZATION=f"Bearer {keys[org_id]}", REMOTE_ADDR="10.0.3.17")
        assert answer.status_code == 201, answer.content
    print(f"recorded {count - have} events through POST /api/v1/usage/events in {time.monotonic() - started:.1f} s")
    return UsageEvent.objects.filter(account__org_id__in=org_ids).count()


def clone(org_ids: list[int], target: int) -> None:
    """Clone the real events (with entry, allocation and audit row) until the table holds `target` events."""
    from django.db import connection, transaction

    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM usage_usageevent")
        (have,) = cursor.fetchone()
        if have >= target:
            return
        # The real rows to copy: events written by the single-event path (one entry each).
        cursor.execute("DROP TABLE IF EXISTS bench_storage_template")
        cursor.execute(
            """
            CREATE UNLOGGED TABLE bench_storage_template AS
            SELECT (row_number() OVER (ORDER BY ev.id) - 1)::integer AS k, ev.id AS event_id, ev.ledger_entry_id AS entry_id,
                   (SELECT au.id FROM orgs_auditevent au WHERE au.org_id = acc.org_id AND au.action = 'usage.recorded'
                      AND au.data->>'event' = ev.id::text) AS audit_id
            FROM usage_usageevent ev JOIN usage_creditaccount acc ON acc.id = ev.account_id
            WHERE acc.org_id = ANY(%s) AND ev.ledger_entry_id IS NOT NULL
            """,
            [org_ids],
        )
        cursor.execute("SELECT count(*), count(audit_id) FROM bench_storage_template")
        templates, audited = cursor.fetchone()
        assert templates and audited == templates, (templates, audited)
    missing = target - have
    started = time.monotonic()
    done = 0
    while done < missing:
        size = min(CHUNK, missing - done)
        with transaction.atomic(), connection.cursor() as cursor:
            # n counts clones over all runs, so each chunk goes on where the last stopped.
            cursor.execute(
                """
                CREATE TEMP TABLE bench_chunk ON COMMIT DROP AS
                SELECT n, t.event_id, t.entry_id, t.audit_id,
                       nextval(pg_get_serial_sequence('usage_usageevent', 'id')) AS new_event,
                       nextval(pg_get_serial_sequence('usage_ledgerentry', 'id')) AS new_entry,
                       nextval(pg_get_serial_sequence('orgs_auditevent', 'id')) AS new_audit,
                       -- the same length as the real key (run-<12 hex>:llm-<n>), fresh
                       'run-' || substr(md5(random()::text), 1, 12) || ':llm-' || (1 + n %% 40) AS new_key,
                       now() - make_interval(secs => (%(last)s - n) * 0.003) AS at
                FROM generate_series(%(first)s, %(last)s) n
                JOIN bench_storage_template t ON t.k = n %% %(templates)s
                """,
                {"first": have + done + 1, "last": have + done + size, "templates": templates},
            )
            cursor.execute(
                """
                INSERT INTO usage_ledgerentry (id, account_id, kind, amount_micros, balance_after_micros, grant_id,
                    member_id, hold_id, transfer_id, staff_user_id, stripe_object_id, reason, idempotency_key, metadata,
                    created_at)
                SELECT c.new_entry, e.account_id, e.kind, e.amount_micros, e.balance_after_micros, e.grant_id,
                    e.member_id, e.hold_id, e.transfer_id, e.staff_user_id, e.stripe_object_id, e.reason,
                    'usage:' || c.new_key, e.metadata, c.at
                FROM bench_chunk c JOIN usage_ledgerentry e ON e.id = c.entry_id ORDER BY c.n
                """
            )
            cursor.execute(
                """
                INSERT INTO usage_ledgerallocation (entry_id, grant_id, amount_micros)
                SELECT c.new_entry, a.grant_id, a.amount_micros
                FROM bench_chunk c JOIN usage_ledgerallocation a ON a.entry_id = c.entry_id ORDER BY c.n
                """
            )
            cursor.execute(
                """
                INSERT INTO usage_usageevent (id, account_id, member_id, meter_id, model, quantity, credits_per_unit,
                    credits_micros, balance_after_micros, billing_mode, provider_key_id, workflow_run_id, occurred_at,
                    created_at, metadata, idempotency_key, request_fingerprint, ledger_entry_id, hold_id,
                    api_key_prefix, for_org_id)
                SELECT c.new_event, v.account_id, v.member_id, v.meter_id, v.model, v.quantity, v.credits_per_unit,
                    v.credits_micros, v.balance_after_micros, v.billing_mode, v.provider_key_id,
                    split_part(c.new_key, ':', 1), c.at, c.at, v.metadata, c.new_key,
                    encode(sha256(c.new_key::bytea), 'hex'), c.new_entry, v.hold_id, v.api_key_prefix, v.for_org_id
                FROM bench_chunk c JOIN usage_usageevent v ON v.id = c.event_id ORDER BY c.n
                """
            )
            cursor.execute(
                """
                INSERT INTO orgs_auditevent (id, org_id, action, actor_user_id, actor_api_key, actor_label, source,
                    request_id, ip, data, created_at)
                SELECT c.new_audit, a.org_id, a.action, a.actor_user_id, a.actor_api_key, a.actor_label, a.source,
                    CASE WHEN a.request_id = '' THEN '' ELSE md5(c.new_key) END, a.ip,
                    a.data || jsonb_build_object('entry', c.new_entry, 'event', c.new_event,
                                                 'idempotency_key', c.new_key),
                    c.at
                FROM bench_chunk c JOIN orgs_auditevent a ON a.id = c.audit_id ORDER BY c.n
                """
            )
        done += size
        print(f"  cloned {done:,} / {missing:,} ({time.monotonic() - started:.0f} s)", flush=True)
    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE bench_storage_template")


SIZES = """
SELECT 'heap', pg_relation_size(c.oid), 0 FROM pg_class c WHERE c.oid = %(t)s::regclass
UNION ALL
SELECT 'TOAST (table + its index)', coalesce(pg_total_relation_size(c.reltoastrelid), 0), 1
FROM pg_class c WHERE c.oid = %(t)s::regclass
UNION ALL
SELECT 'index ' || i.indexrelid::regclass::text, pg_relation_size(i.indexrelid), 2
FROM pg_index i WHERE i.indrelid = %(t)s::regclass
UNION ALL
SELECT 'free space + visibility maps', pg_relation_size(c.oid, 'fsm') + pg_relation_size(c.oid, 'vm'), 3
FROM pg_class c WHERE c.oid = %(t)s::regclass
ORDER BY 3, 1
"""


def report() -> dict[str, float]:
    """Print each table's bytes per row by part; the total bytes per row of each table."""
    from django.db import connection

    totals = {}
    with connection.cursor() as cursor:
        for table in TABLES:
            cursor.execute(f"SELECT count(*), avg(pg_column_size(t.*)) FROM {table} t")
            rows, tuple_bytes = cursor.fetchone()
            cursor.execute(SIZES, {"t": table})
            parts = cursor.fetchall()
            cursor.execute("SELECT pg_total_relation_size(%s), pg_indexes_size(%s)", [table, table])
            total, indexes = cursor.fetchone()
            # pg_column_size of the whole row measures it as a composite: its 24-byte header included.
            print(f"{table}: {rows:,} rows, {total / 2**20:,.1f} MiB in all; average row {tuple_bytes:.0f} bytes "
                  f"(pg_column_size, its 24-byte tuple header included) + 4 of line pointer")
            for name, size, _order in parts:
                print(f"  {name:<56} {size / 2**20:9.1f} MiB   {size / rows:7.1f} bytes/row")
            print(f"  {'all indexes (pg_indexes_size)':<56} {indexes / 2**20:9.1f} MiB   {indexes / rows:7.1f} bytes/row")
            print(f"  {'total (pg_total_relation_size)':<56} {total / 2**20:9.1f} MiB   {total / rows:7.1f} bytes/row",
                  flush=True)
            totals[table] = total / rows
    entry = totals["usage_ledgerentry"] + totals["usage_ledgerallocation"]
    event = sum(totals.values())
    print(f"per ledger entry with its allocation:                 {entry:7.0f} bytes")
    print(f"per usage event alone:                               {totals['usage_usageevent']:7.0f} bytes")
    print(f"per single usage event as POST /usage/events writes it "
          f"(event + entry + allocation + audit row): {event:7.0f} bytes")
    print(f"10^9 such events: {event * 1e9 / 2**40:.2f} TiB; as batch events (1 entry per 1,000 events, "
          f"1 audit row per batch): {totals['usage_usageevent'] * 1e9 / 2**40:.2f} TiB")
    return totals


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=1_000_000, help="usage events (and ledger entries) to reach")
    parser.add_argument("--real", type=int, default=3_000, help="events recorded through the real endpoint first")
    args = parser.parse_args()
    from django.db import connection

    org_ids = bench_orgs("bench-storage", ORGS)
    real_events(org_ids, args.real)
    clone(org_ids, args.events)
    started = time.monotonic()
    with connection.cursor() as cursor:
        cursor.execute(f"VACUUM ANALYZE {', '.join(TABLES)}")
    print(f"VACUUM ANALYZE in {time.monotonic() - started:.0f} s")
    report()


if __name__ == "__main__":
    main()
