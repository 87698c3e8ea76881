"""HTTP figures through gunicorn, measured with wrk on loopback, in one run:

(b) usage events per second through POST /api/v1/usage/events/batch (1,000 events a request);
(c) p50/p99 and requests per second at 32 concurrent clients of GET /api/v1/balance and of
    POST /api/v1/usage/events (one event; all for one organization, then spread over 32, one
    API key each), against a bare DRF endpoint that reads one row by primary key (no
    authentication, permission or throttle) served by the same gunicorn;
(d) GET /api/v1/balance latency on an account with 10^3 ledger entries and one with 10^6;
(e) the latency floor: p50/p99 at one client of GET /api/v1/balance and of POST /api/v1/usage/events
    (one org), next to the bare read's, in interleaved rounds.

(b) also prints, in the same run, its ceiling: pgbench writing the same rows the batch endpoint
writes for 1,000 events (one entry, its allocation, 1,000 usage events, one audit row, the grant and
account updates) in one transaction on the same account, at the same connections.

With --profile DIR, py-spy records the gunicorn workers while 32 clients drive each of the bare
read, the balance read and single usage events (--seconds each), and prints where the time goes.

    apt-get install wrk
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/tollgate_bench REDIS_URL=redis://127.0.0.1:6379/9 \\
        flock /tmp/tollgate-bench.lock .venv/bin/python bench/web.py [--seconds 10] [--workers 4 --threads 4]

The server runs the production settings (DEBUG off, API keys, throttling against Redis when
REDIS_URL is set) with API_RATE_LIMIT raised so the load is not refused.
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

from _common import ROOT, bench_orgs, median, pgbench, vacuum

HERE = ROOT / "bench"


def api_key(org_id: int) -> str:
    from accounts.models import OrgAPIKey

    _key, secret = OrgAPIKey.objects.create_key(org_id=org_id, name="bench", scopes=["read", "usage:write"])
    return secret


def seed_entries(org_id: int, count: int) -> None:
    """Give the account `count` ledger entries, shaped as debits write them (entry +
    allocation, grant and balance kept in step, so reconcile still holds). Written in
    SQL because a million service calls would take longer than the measurement."""
    from django.db import connection, transaction

    from usage.models import CreditAccount, Grant, LedgerEntry

    account = CreditAccount.objects.get(org_id=org_id)
    have = LedgerEntry.objects.filter(account=account).count()
    if have >= count:
        return
    grant = Grant.objects.filter(account=account, remaining_micros__gt=count).first()
    missing = count - have
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT balance_micros FROM usage_creditaccount WHERE id = %s FOR UPDATE", [account.pk])
        (balance,) = cursor.fetchone()
        cursor.execute(
            """
            WITH ids AS MATERIALIZED (
                SELECT nextval(pg_get_serial_sequence('usage_ledgerentry', 'id')) AS id, n
                FROM generate_series(1, %(missing)s) n),
            e AS (INSERT INTO usage_ledgerentry (id, account_id, kind, amount_micros, balance_after_micros, grant_id,
                                                 stripe_object_id, reason, idempotency_key, metadata, created_at)
                  SELECT id, %(account)s, 'usage', -1, %(balance)s - n, %(grant)s, '', 'bench seed',
                         'seed:' || %(have)s + n, '{}', now() - (%(missing)s - n) * interval '1 millisecond'
                  FROM ids)
            INSERT INTO usage_ledgerallocation (entry_id, grant_id, amount_micros) SELECT id, %(grant)s, -1 FROM ids
            """,
            {"missing": missing, "account": account.pk, "balance": balance, "grant": grant.pk, "have": have},
        )
        cursor.execute("UPDATE usage_grant SET remaining_micros = remaining_micros - %s WHERE id = %s", [missing, grant.pk])
        cursor.execute("UPDATE usage_creditaccount SET balance_micros = balance_micros - %s WHERE id = %s", [missing, account.pk])


_UNIT = {"us": 0.001, "ms": 1.0, "s": 1000.0}


# Whose CPU time (c) reports per request, by process name: gunicorn's workers,
# PostgreSQL's backends, Redis (the rate-limit counter). On a machine shared with
# other work only our own are counted: the workers of our server (its process
# group) and the backends connected to our database (the workers keep theirs
# open); Redis is one process, whoever else uses it.
CPU_OF = {"web": "gunicorn", "PostgreSQL": "postgres", "Redis": "redis-server"}
OURS: dict[str, set[int] | None] = {"web": None, "PostgreSQL": None, "Redis": None}


def our_processes(server_pid: int) -> None:
    """Count only our server's workers and the backends of our database from now on."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()")
        OURS["PostgreSQL"] = {row[0] for row in cursor.fetchall()}
    connection.close()
    OURS["web"] = {server_pid, *_group(server_pid)}


def _group(pgid: int) -> set[int]:
    pids = set()
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat") as f:
                if int(f.read().rsplit(") ", 1)[1].split()[2]) == pgid:
                    pids.add(int(pid))
        except (OSError, IndexError, ValueError):
            continue
    return pids


def cpu_seconds() -> dict[str, float]:
    """CPU seconds (user + system) used so far by each CPU_OF name's processes (ours, see OURS)."""
    tick = os.sysconf("SC_CLK_TCK")
    totals = dict.fromkeys(CPU_OF, 0.0)
    names = {comm: label for label, comm in CPU_OF.items()}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat") as f:
                comm, rest = f.read().split(" (", 1)[1].rsplit(") ", 1)
        except (OSError, IndexError, ValueError):
            continue  # gone meanwhile
        if comm in names:
            label = names[comm]
            if OURS[label] is not None and int(pid) not in OURS[label]:
                continue
            fields = rest.split()
            totals[label] += (int(fields[11]) + int(fields[12])) / tick  # utime, stime
    return totals


def wrk(url: str, *, connections: int, seconds: int, script: str, args: list[str]) -> dict:
    cmd = ["wrk", "-t", str(min(2, connections)), "-c", str(connections), "-d", f"{seconds}s", "--latency",
           "-s", str(HERE / script), url, "--", *args]
    before = cpu_seconds()
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    after = cpu_seconds()
    figures = {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))}
    figures["requests"] = int(re.search(r"(\d+) requests in", out).group(1))
    figures["cpu"] = {label: after[label] - before[label] for label in CPU_OF}
    for pct in ("50", "99"):
        value, unit = re.search(rf"^\s+{pct}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M).groups()
        figures[f"p{pct}"] = float(value) * _UNIT[unit]
    bad = re.search(r"unexpected_status: (\d+)", out)
    figures["bad"] = int(bad.group(1)) if bad else 0
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    figures["non2xx"] = int(errors.group(1)) if errors else 0
    return figures


# (b)'s ceiling: what the batch endpoint writes for 1,000 events, by PostgreSQL alone. The
# rows are those of the last batch event the endpoint recorded (`batch_template`): one usage
# entry for the batch, its allocation, 1,000 usage events naming it, the audit row, the grant
# and account updates, under the account lock, in one transaction. Generated in the server
# (generate_series), so no client builds or sends rows: the ceiling, not a second client.
BATCH_CEILING = """\\set n 1000
BEGIN;
SELECT balance_micros FROM usage_creditaccount WHERE id = :account FOR UPDATE;
WITH ids AS MATERIALIZED (SELECT nextval('{event_seq}') AS id, n FROM generate_series(1, :n) n),
e AS (INSERT INTO usage_ledgerentry (id, account_id, kind, amount_micros, balance_after_micros, grant_id, member_id,
                                     stripe_object_id, reason, idempotency_key, metadata, created_at)
      SELECT nextval('{entry_seq}'), :account, 'usage', -:n * :charge, 0, :grant, NULL, '', :n || ' usage events',
             'usage-batch:' || min(id), '{{}}', now() FROM ids
      RETURNING id),
a AS (INSERT INTO usage_ledgerallocation (entry_id, grant_id, amount_micros) SELECT id, :grant, -:n * :charge FROM e),
au AS (INSERT INTO orgs_auditevent (org_id, action, actor_api_key, actor_label, source, request_id, ip, data,
                                    created_at)
       SELECT :org, 'usage.recorded', '{prefix}', 'API key {prefix} (bench)', 'api', md5(e.id::text), '127.0.0.1',
              jsonb_build_object('events', :n, 'amount', '-300', 'balance_after', '999703200.1'), now() FROM e)
INSERT INTO usage_usageevent (id, account_id, member_id, meter_id, model, quantity, credits_per_unit, credits_micros,
    balance_after_micros, billing_mode, workflow_run_id, occurred_at, created_at, metadata, idempotency_key,
    request_fingerprint, ledger_entry_id, api_key_prefix)
SELECT ids.id, :account, NULL, :meter, '{model}', {quantity}, {per_unit}, :charge, -ids.n * :charge,
       '{billing_mode}', 'bench-' || :client_id, now(), now(), '{{}}', 'pgb-' || :client_id || '-' || ids.id,
       lpad(ids.id::text, 64, 'f'), e.id, '{prefix}'
FROM ids, e;
UPDATE usage_grant SET remaining_micros = remaining_micros - :n * :charge WHERE id = :grant;
UPDATE usage_creditaccount SET balance_micros = balance_micros - :n * :charge, updated_at = now() WHERE id = :account;
END;
"""


def batch_template(org_id: int) -> tuple[str, dict[str, str]]:
    """BATCH_CEILING filled in from the last usage event the endpoint recorded for `org_id`."""
    from django.db import connection

    from usage.models import LedgerAllocation, UsageEvent

    event = UsageEvent.objects.filter(account__org_id=org_id, ledger_entry__isnull=False).order_by("-id").first()
    allocation = LedgerAllocation.objects.filter(entry_id=event.ledger_entry_id).first()
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_get_serial_sequence('usage_usageevent', 'id'), "
                       "pg_get_serial_sequence('usage_ledgerentry', 'id')")
        event_seq, entry_seq = cursor.fetchone()
    script = BATCH_CEILING.format(event_seq=event_seq, entry_seq=entry_seq, prefix=event.api_key_prefix,
                                  model=event.model, quantity=event.quantity, per_unit=event.credits_per_unit,
                                  billing_mode=event.billing_mode)
    variables = {"account": str(event.account_id), "org": str(org_id), "grant": str(allocation.grant_id),
                 "meter": str(event.meter_id), "charge": str(event.credits_micros)}
    return script, variables


def py_spy(pid: int, out: Path, seconds: int) -> subprocess.Popen:
    """Sample the server and its workers for `seconds` into `out` (collapsed stacks)."""
    spy = Path(sys.executable).with_name("py-spy")
    # --gil: only the thread holding the GIL, i.e. where the workers' Python CPU goes (waits on
    # PostgreSQL and Redis release it; bench/statements.py times PostgreSQL's side).
    return subprocess.Popen([str(spy), "record", "--pid", str(pid), "--subprocesses", "--nonblocking", "--gil",
                             "--rate", "200",
                             "--duration", str(seconds), "--format", "raw", "--output", str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _frame(frame: str) -> str:
    """`function (path/to/file.py:line)` -> `function (file.py)`: one name per function."""
    match = re.match(r"(.*?) \((.*?)(?::\d+)?\)$", frame)
    if not match:
        return frame
    name, path = match.groups()
    for marker in ("site-packages/", "lib/python3.11/", str(ROOT) + "/"):
        if marker in path:
            path = path.split(marker, 1)[1]
    return f"{name} ({path})"


# Frames on (nearly) every request's stack: the server, the middleware chain, DRF's dispatch.
SPINE = ("threading.py", "concurrent/futures/", "gunicorn/", "agent_tools/http.py", "django/core/handlers/",
         "django/utils/deprecation.py", "whitenoise/", "axes/middleware.py", "django/views/", "contextlib.py",
         "django/views/decorators/")


def profile_summary(raw: Path, top: int = 25) -> None:
    """Print the share of samples in which each function is on the stack (inclusive) and on top (self),
    leaving out the frames every request passes through (SPINE)."""
    inclusive: collections.Counter = collections.Counter()
    own: collections.Counter = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = [_frame(f) for f in stack.split(";") if not f.startswith(("process ", "thread "))]
        if not frames:
            continue
        n = int(count)
        total += n
        for frame in set(frames):
            if not any(part in frame for part in SPINE):
                inclusive[frame] += n
        own[frames[-1]] += n
    print(f"  {total} samples holding the GIL; functions by inclusive share (self share), the server's and "
          f"middleware's own frames left out:")
    for frame, n in inclusive.most_common(top):
        print(f"    {n / total:6.1%} ({own[frame] / total:5.1%})  {frame}")
    print("  by self share:")
    for frame, n in own.most_common(top // 2):
        print(f"    {n / total:6.1%}  {frame}")


def start_server(port: int, workers: int, threads: int) -> subprocess.Popen:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "bench_settings",
        "PYTHONPATH": f"{HERE}:{ROOT}",
        "API_RATE_LIMIT": "1000000/s",
        "DEBUG": "false",
        "DB_CONN_MAX_AGE": "600",
        "LOG_LEVEL": "WARNING",
    }
    cmd = [str(Path(sys.executable).with_name("gunicorn")), "billing_project.wsgi:application", "--bind", f"127.0.0.1:{port}",
           "--workers", str(workers), "--worker-class", "gthread", "--threads", str(threads),
           "--backlog", "2048", "--log-level", "warning", "--keep-alive", "30"]
    server = subprocess.Popen(cmd, env=env, cwd=ROOT, start_new_session=True)
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5).read()
            return server
        except OSError:
            time.sleep(0.5)
    server.terminate()
    raise SystemExit("gunicorn did not start")


def _merge(figures: list[dict]) -> dict:
    """Mean req/s over rounds; median of each round's p50 and p99."""
    requests = sum(f["requests"] for f in figures)
    return {
        "cpu_ms": {label: sum(f["cpu"][label] for f in figures) * 1000 / requests for label in CPU_OF},
        "rps": sum(f["rps"] for f in figures) / len(figures),
        "p50": median([f["p50"] for f in figures]),
        "p99": median([f["p99"] for f in figures]),
        "bad": sum(f["bad"] for f in figures),
        "non2xx": sum(f["non2xx"] for f in figures),
    }


def show(label: str, f: dict, base: dict | None = None) -> None:
    line = f"{label:<34} {f['rps']:9.0f} req/s   p50 {f['p50']:7.2f} ms   p99 {f['p99']:7.2f} ms"
    if base:
        line += f"   req/s {f['rps'] / base['rps']:6.1%} of bare   p99 {f['p99'] / base['p99']:5.2f}x bare"
    if f["bad"] or f["non2xx"]:
        line += f"   (!) {f['bad'] or f['non2xx']} unexpected answers"
    print(line, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--port", type=int, default=8931)
    parser.add_argument("--rounds", type=int, default=3, help="(c): interleaved rounds per endpoint")
    parser.add_argument("--only", choices=["b", "c", "d", "e"], nargs="*")
    parser.add_argument("--profile", type=Path, metavar="DIR",
                        help="only profile (py-spy) the bare read, the balance read and single events into DIR")
    args = parser.parse_args()
    only = set(args.only or ["b", "c", "d", "e"]) if not args.profile else set()

    from django.db import connections

    from usage.models import CreditAccount, UsageEvent

    (hot,) = bench_orgs("bench-http", 1)
    small, large = bench_orgs("bench-d", 2)
    key = api_key(hot)
    spread_keys = [api_key(org_id) for org_id in bench_orgs("bench-http-orgs", 32)] if "c" in only else []
    if "d" in only:
        seed_entries(small, 1_000)
        seed_entries(large, 1_000_000)
    keys = {"1k": api_key(small), "1m": api_key(large)}
    hot_account = CreditAccount.objects.get(org_id=hot).pk
    vacuum("usage_creditaccount", "usage_grant", "usage_ledgerentry", "usage_usageevent", "orgs_auditevent")
    connections.close_all()

    base = f"http://127.0.0.1:{args.port}"
    server = start_server(args.port, args.workers, args.threads)
    print(f"gunicorn: {args.workers} workers x {args.threads} threads (gthread); wrk on loopback; {args.seconds} s each")
    try:
        run = uuid.uuid4().hex[:8]
        # warm every worker's connection, prepared statements and rate card
        wrk(f"{base}/api/v1/balance", connections=32, seconds=2, script="wrk_get.lua", args=[key])
        wrk(base, connections=32, seconds=2, script="wrk_event.lua", args=[key, f"warm{run}"])
        wrk(f"{base}/bench/bare/{hot_account}", connections=32, seconds=2, script="wrk_get.lua", args=[key])
        our_processes(server.pid)

        if args.profile:
            args.profile.mkdir(parents=True, exist_ok=True)
            print(f"profile: py-spy (200 Hz, all workers) while 32 clients drive each for {args.seconds} s")
            for name, url, script, extra in [
                ("bare", f"{base}/bench/bare/{hot_account}", "wrk_get.lua", [key]),
                ("balance", f"{base}/api/v1/balance", "wrk_get.lua", [key]),
                ("event", base, "wrk_event.lua", [key, f"prof{run}"]),
            ]:
                out = args.profile / f"{name}.txt"
                spy = py_spy(server.pid, out, args.seconds)
                time.sleep(1)  # py-spy attaches to every worker first
                figures = wrk(url, connections=32, seconds=args.seconds - 1, script=script, args=extra)
                spy.wait(timeout=60)
                show(name, figures)
                profile_summary(out)

        if "c" in only:
            # Interleaved rounds: on a shared machine the load changes within a
            # minute, so every endpoint is measured in every round, back to back.
            print(f"(c) 32 concurrent clients, {args.rounds} interleaved rounds of {args.seconds // args.rounds} s")
            runs: dict[str, list[dict]] = {"bare": [], "bare_auth": [], "balance": [], "event": [], "spread": []}
            slice_ = max(1, args.seconds // args.rounds)
            for r in range(args.rounds):
                runs["bare"].append(wrk(f"{base}/bench/bare/{hot_account}", connections=32, seconds=slice_,
                                        script="wrk_get.lua", args=[key]))
                runs["bare_auth"].append(wrk(f"{base}/bench/bare-auth/{hot_account}", connections=32, seconds=slice_,
                                             script="wrk_get.lua", args=[key]))
                runs["balance"].append(wrk(f"{base}/api/v1/balance", connections=32, seconds=slice_,
                                           script="wrk_get.lua", args=[key]))
                runs["event"].append(wrk(base, connections=32, seconds=slice_, script="wrk_event.lua",
                                         args=[key, f"one{run}{r}"]))
                runs["spread"].append(wrk(base, connections=32, seconds=slice_, script="wrk_event_orgs.lua",
                                          args=[f"orgs{run}{r}", *spread_keys]))
            merged = {name: _merge(figures) for name, figures in runs.items()}
            show("bare DRF, one row by pk", merged["bare"])
            show("same, behind API key auth + limit", merged["bare_auth"], merged["bare"])
            show("GET /api/v1/balance", merged["balance"], merged["bare"])
            show("POST /api/v1/usage/events, 1 org", merged["event"], merged["bare"])
            show("POST /api/v1/usage/events, 32 orgs", merged["spread"], merged["bare"])
            # The ratios move by 10-20 points between runs on a shared 2-core machine; the CPU
            # each request costs, by process, is steadier and says where the time goes.
            print("CPU per request (ms; wrk's own not counted): " + ", ".join(CPU_OF))
            for name, label in [("bare", "bare DRF"), ("bare_auth", "bare + auth + limit"), ("balance", "balance"),
                                ("event", "event, 1 org"), ("spread", "event, 32 orgs")]:
                cpu = merged[name]["cpu_ms"]
                print(f"  {label:<32} " + "  ".join(f"{cpu[k]:6.3f}" for k in CPU_OF)
                      + f"   total {sum(cpu.values()):6.3f}   {sum(cpu.values()) / sum(merged['bare']['cpu_ms'].values()):.2f}x bare",
                      flush=True)

        if "e" in only:
            # One client: no queue, so p50 is one request's own time through the whole stack.
            print(f"(e) latency floor: 1 client, {args.rounds} interleaved rounds of {max(1, args.seconds // args.rounds)} s")
            floor: dict[str, list[dict]] = {"bare": [], "bare_auth": [], "balance": [], "event": []}
            slice_ = max(1, args.seconds // args.rounds)
            for r in range(args.rounds):
                floor["bare"].append(wrk(f"{base}/bench/bare/{hot_account}", connections=1, seconds=slice_,
                                         script="wrk_get.lua", args=[key]))
                floor["bare_auth"].append(wrk(f"{base}/bench/bare-auth/{hot_account}", connections=1, seconds=slice_,
                                              script="wrk_get.lua", args=[key]))
                floor["balance"].append(wrk(f"{base}/api/v1/balance", connections=1, seconds=slice_,
                                            script="wrk_get.lua", args=[key]))
                floor["event"].append(wrk(base, connections=1, seconds=slice_, script="wrk_event.lua",
                                          args=[key, f"floor{run}{r}"]))
            merged = {name: _merge(figures) for name, figures in floor.items()}
            show("bare DRF, one row by pk", merged["bare"])
            for name, label in [("bare_auth", "same, behind API key auth + limit"), ("balance", "GET /api/v1/balance"),
                                ("event", "POST /api/v1/usage/events, 1 org")]:
                f, b = merged[name], merged["bare"]
                print(f"{label:<34} {f['rps']:9.0f} req/s   p50 {f['p50']:7.2f} ms   p99 {f['p99']:7.2f} ms   "
                      f"p50 {f['p50'] / b['p50']:5.2f}x bare   p99 {f['p99'] / b['p99']:5.2f}x bare"
                      + (f"   (!) {f['bad'] or f['non2xx']} unexpected answers" if f["bad"] or f["non2xx"] else ""),
                      flush=True)

        if "b" in only:
            print("(b) batch endpoint, 1,000 events per request; ceiling: pgbench writing the same rows, "
                  "1,000 events a transaction")
            for conns in (2, 4):
                vacuum("usage_creditaccount", "usage_grant", "usage_ledgerentry", "usage_usageevent", "orgs_auditevent")
                before = UsageEvent.objects.filter(account__org_id=hot).count()
                connections.close_all()
                batch = wrk(base, connections=conns, seconds=args.seconds, script="wrk_batch.lua", args=[key, f"b{conns}{run}"])
                recorded = UsageEvent.objects.filter(account__org_id=hot).count() - before
                connections.close_all()
                print(f"{'POST /api/v1/usage/events/batch':<34} {conns} connections: {batch['rps'] * 1000:9.0f} events/s"
                      f"   p50 {batch['p50']:7.1f} ms per batch   ({recorded} events recorded"
                      f"{', (!) ' + str(batch['bad']) + ' batches not fully recorded' if batch['bad'] else ''})", flush=True)
                script, variables = batch_template(hot)
                vacuum("usage_creditaccount", "usage_grant", "usage_ledgerentry", "usage_usageevent", "orgs_auditevent")
                before = UsageEvent.objects.filter(account__org_id=hot).count()
                connections.close_all()
                tps = pgbench(script, conns, args.seconds, variables)
                written = UsageEvent.objects.filter(account__org_id=hot).count() - before
                connections.close_all()
                print(f"{'  ceiling: pgbench, same rows':<34} {conns} connections: {tps * 1000:9.0f} events/s"
                      f"   ({written} events written)   endpoint {batch['rps'] / tps:6.1%} of the ceiling", flush=True)

        if "d" in only:
            print("(d) balance read latency by ledger length, 1 client then 32")
            for conns in (1, 32):
                figures = {}
                for label in ("1k", "1m"):
                    figures[label] = wrk(f"{base}/api/v1/balance", connections=conns, seconds=args.seconds,
                                         script="wrk_get.lua", args=[keys[label]])
                    show(f"balance, 10^{3 if label == '1k' else 6} entries, {conns} client(s)", figures[label])
                print(f"{'':<34} 10^6 / 10^3: p50 {figures['1m']['p50'] / figures['1k']['p50']:.2f}x   "
                      f"p99 {figures['1m']['p99'] / figures['1k']['p99']:.2f}x", flush=True)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
