"""(a) Strict debits per second through the service layer (usage.services.credits_debit),
on one hot organization and spread over 1,000, against pgbench running the same
transaction shape (lock the account row, insert an entry, update the balance) on
the same tables at the same concurrency.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/tollgate_bench \\
        flock /tmp/tollgate-bench.lock .venv/bin/python bench/debits.py [--clients 8] [--seconds 10]
"""

from __future__ import annotations

import argparse
import random
import time
import uuid

from _common import account_ids, bench_orgs, pgbench, run_processes, vacuum

TABLES = ("usage_creditaccount", "usage_grant", "usage_ledgerentry", "usage_ledgerallocation", "orgs_auditevent")

PGBENCH_SHAPE = """\\set a random(:lo, :hi)
BEGIN;
SELECT balance_micros FROM usage_creditaccount WHERE id = :a FOR UPDATE;
INSERT INTO usage_ledgerentry (account_id, kind, amount_micros, balance_after_micros, stripe_object_id, reason, metadata, created_at)
  VALUES (:a, 'usage', -1, 0, '', '', '{}', now());
UPDATE usage_creditaccount SET balance_micros = balance_micros - 1, updated_at = now() WHERE id = :a;
END;
"""


def debit_worker(i, start_at, deadline, queue, org_ids):
    from orgs.models import Organization
    from usage import services

    orgs = [Organization(pk=o) for o in org_ids]
    prefix = uuid.uuid4().hex[:12]
    rng = random.Random(i)
    ops = 0
    time.sleep(max(0, start_at - time.time()))
    while time.time() < deadline:
        services.credits_debit(org=rng.choice(orgs), amount_micros=1, idempotency_key=f"bench:{prefix}:{ops}")
        ops += 1
    queue.put((ops, []))


def measure(label: str, org_ids: list[int], clients: int, seconds: int) -> tuple[float, float]:
    vacuum(*TABLES)
    ops, elapsed, _ = run_processes(debit_worker, lambda i: (org_ids,), clients, seconds)
    ours = ops / elapsed
    accounts = account_ids(org_ids)
    # The 1,000 bench accounts are created together, so their ids are contiguous; check it.
    lo, hi = min(accounts), max(accounts)
    assert hi - lo + 1 == len(accounts), "bench accounts are not contiguous; recreate the bench database"
    vacuum(*TABLES)
    raw = pgbench(PGBENCH_SHAPE, clients, seconds, {"lo": str(lo), "hi": str(hi)})
    print(f"{label:<22} clients={clients:<3} service {ours:8.0f} debits/s   pgbench {raw:8.0f} tps   ratio {ours / raw:6.1%}")
    return ours, raw


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clients", type=int, nargs="+", default=[8])
    parser.add_argument("--seconds", type=int, default=10)
    args = parser.parse_args()
    hot = bench_orgs("bench-hot", 1)
    spread = bench_orgs("bench-spread", 1000)
    for clients in args.clients:
        measure("one hot org", hot, clients, args.seconds)
        measure("spread over 1,000 orgs", spread, clients, args.seconds)


if __name__ == "__main__":
    main()
