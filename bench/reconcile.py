"""How long reconciliation with Stripe takes over many paid checkouts.

    export DATABASE_URL=postgres://postgres@127.0.0.1:5432/tollgate_bench   # a migrated database
    flock /tmp/tollgate-bench.lock .venv/bin/python bench/reconcile.py [--purchases 50000] [--runs 3]

The first run builds the org `bench-reconcile` with N pack purchases as
fulfilment leaves them, bulk-inserted with INSERT ... SELECT generate_series:
in dj-stripe's tables a paid Checkout Session and its succeeded payment
intent each; in ours the grant, its entry and allocation, the purchase, and
the account's cached balance. Then ANALYZE; later runs reuse it. Each run is
`stripe_reconcile` over everything (no --since), as the nightly task runs it,
timed wall-clock, with the number of rows it read a page at a time and the
drift it found (0 on this data; anything else in the database adds to it).
"""

from __future__ import annotations

import argparse
import time

# Django against DATABASE_URL (refusing to start without one), as every bench script.
from _common import C, median  # noqa: E402

from django.db import connection, transaction  # noqa: E402

from billing import services  # noqa: E402
from billing.models import Pack  # noqa: E402
from orgs.models import Organization  # noqa: E402
from usage import services as usage_services  # noqa: E402
from usage.models import CreditAccount, GrantSource  # noqa: E402

SLUG = "bench-reconcile"


def build(purchases: int) -> Organization:
    org = Organization.objects.filter(slug=SLUG).first()
    if org is not None:
        return org
    services.catalog_load()
    pack = Pack.objects.get(code="pack_500")
    with transaction.atomic():
        org = Organization.objects.create(name="Bench reconcile", slug=SLUG)
        usage_services.credits_grant(org=org, amount_micros=C, source=GrantSource.PROMO, idempotency_key="bench:seed")
        account = CreditAccount.objects.get(org=org)
        params = {"account": account.pk, "org": org.pk, "pack": pack.pk, "n": purchases,
                  "credits": pack.credits_micros, "cents": pack.amount_cents}
        with connection.cursor() as cursor:
            cursor.execute("""
                INSERT INTO usage_grant (account_id, source, amount_micros, remaining_micros, frozen_micros,
                                         priority, reference, created_at)
                SELECT %(account)s, 'purchase', %(credits)s, %(credits)s, 0, 60, 'cs_bench_' || g,
                       now() - interval '3 hours'
                FROM generate_series(1, %(n)s) g""", params)
            cursor.execute("""
                INSERT INTO usage_ledgerentry (account_id, kind, amount_micros, balance_after_micros, grant_id,
                                               stripe_object_id, reason, idempotency_key, metadata, created_at)
                SELECT %(account)s, 'grant', %(credits)s, %(credits)s, g.id,
                       'pi_bench_' || substr(g.reference, 10), 'Bought a pack', 'checkout:' || g.reference, '{}',
                       g.created_at
                FROM usage_grant g WHERE g.account_id = %(account)s AND g.reference LIKE 'cs_bench_%%'""", params)
            cursor.execute("""
                INSERT INTO usage_ledgerallocation (entry_id, grant_id, amount_micros)
                SELECT e.id, e.grant_id, e.amount_micros FROM usage_ledgerentry e
                WHERE e.account_id = %(account)s AND e.idempotency_key LIKE 'checkout:cs_bench_%%'""", params)
            cursor.execute("""
                INSERT INTO billing_purchase (org_id, kind, pack_id, credits_micros, amount_cents, discount_cents,
                                              promotion_code, total_cents, currency, checkout_session_id,
                                              payment_intent_id, grant_id, simulated, created_at)
                SELECT %(org)s, 'pack', %(pack)s, %(credits)s, %(cents)s, 0, '', %(cents)s, 'usd', g.reference,
                       'pi_bench_' || substr(g.reference, 10), g.id, false, g.created_at
                FROM usage_grant g WHERE g.account_id = %(account)s AND g.reference LIKE 'cs_bench_%%'""", params)
            cursor.execute("""
                INSERT INTO djstripe_paymentintent (djstripe_created, djstripe_updated, id, livemode, created,
                                                    metadata, stripe_data)
                SELECT now(), now(), 'pi_bench_' || g, false, now() - interval '3 hours', '{}',
                       jsonb_build_object('id', 'pi_bench_' || g, 'object', 'payment_intent', 'status', 'succeeded',
                                          'amount', %(cents)s, 'amount_received', %(cents)s, 'currency', 'usd',
                                          'metadata', jsonb_build_object('tollgate_kind', 'pack',
                                                                         'tollgate_org_id', %(org)s::text))
                FROM generate_series(1, %(n)s) g""", params)
            cursor.execute("""
                INSERT INTO djstripe_session (djstripe_created, djstripe_updated, id, livemode, created, metadata,
                                              payment_intent_id, stripe_data)
                SELECT now(), now(), 'cs_bench_' || g, false, now() - interval '3 hours', '{}', 'pi_bench_' || g,
                       jsonb_build_object('id', 'cs_bench_' || g, 'object', 'checkout.session', 'mode', 'payment',
                                          'status', 'complete', 'payment_status', 'paid',
                                          'payment_intent', 'pi_bench_' || g, 'amount_total', %(cents)s,
                                          'currency', 'usd', 'metadata',
                                          jsonb_build_object('tollgate_kind', 'pack', 'tollgate_org_id', %(org)s::text))
                FROM generate_series(1, %(n)s) g""", params)
            cursor.execute("""
                UPDATE usage_creditaccount SET balance_micros = balance_micros + %(n)s::bigint * %(credits)s
                WHERE id = %(account)s""", params)
            cursor.execute("ANALYZE")
    return org


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--purchases", type=int, default=50_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    started = time.perf_counter()
    build(args.purchases)
    print(f"data ready in {time.perf_counter() - started:.1f} s")
    timings = []
    for _ in range(args.runs):
        started = time.perf_counter()
        run = services.stripe_reconcile(trigger="bench", notify=False)
        timings.append(time.perf_counter() - started)
        print(f"run {run.pk}: {time.perf_counter() - started:.2f} s, {run.findings_count} drift(s), checked {run.checked}")
    print(f"stripe_reconcile over everything: median {median(timings):.2f} s of {args.runs} runs")


if __name__ == "__main__":
    main()
