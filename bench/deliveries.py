"""Deliveries per second one worker sustains to a local receiver.

Creates N events for one organization with one endpoint (a threaded HTTP
receiver on loopback, in its own process, answering 200 at once), then makes
every delivery the way one Celery worker process does (`outbound.deliver`,
one delivery after another: claim, sign, resolve, POST, record), and prints
deliveries per second and the latency of an attempt.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/tollgate_bench \\
        flock /tmp/tollgate-bench.lock .venv/bin/python bench/deliveries.py [--events 2000] [--batch 50]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import statistics
import time
import uuid

os.environ["OUTBOUND_WEBHOOKS_ALLOW_LOCAL"] = "true"  # the receiver is on loopback, over http

from _common import bench_orgs  # noqa: E402


def receive(port_queue) -> None:
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self):
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    port_queue.put(server.server_address[1])
    server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=50, help="deliveries per `outbound.deliver` task, as the sweep sends")
    args = parser.parse_args()

    from outbound import services, tasks
    from outbound.models import Delivery, DeliveryAttempt, DeliveryState, WebhookEndpoint

    ports: mp.Queue = mp.Queue()
    receiver = mp.Process(target=receive, args=(ports,), daemon=True)
    receiver.start()
    port = ports.get(timeout=10)
    try:
        (org_id,) = bench_orgs("bench-deliveries", 1)
        WebhookEndpoint.objects.filter(org_id=org_id).delete()
        endpoint = WebhookEndpoint.objects.create(org_id=org_id, url=f"http://127.0.0.1:{port}/hook", events=["*"],
                                                  secret="whsec_bench")
        tasks.deliver.delay = lambda ids: None  # this script is the worker: nothing goes to the broker
        run = uuid.uuid4().hex[:8]
        started = time.monotonic()
        for i in range(args.events):
            services.event_send(org_id=org_id, type="balance.low", key=f"{run}:{i}",
                                data={"available": "99.5", "previous_available": "100.5", "balance": "99.5",
                                      "held": "0", "debt": "0", "low_balance_line": "100"})
        made = time.monotonic() - started
        ids = list(Delivery.objects.filter(endpoint=endpoint, state=DeliveryState.PENDING)
                   .order_by("id").values_list("pk", flat=True))
        started = time.monotonic()
        for start in range(0, len(ids), args.batch):
            tasks.deliver(ids[start:start + args.batch])  # the task's body, in this one process
        took = time.monotonic() - started
        delivered = Delivery.objects.filter(pk__in=ids, state=DeliveryState.SUCCEEDED).count()
        latencies = list(DeliveryAttempt.objects.filter(delivery_id__in=ids).values_list("latency_ms", flat=True))
        print(f"{args.events} events recorded by event_send in {made:.1f} s ({args.events / made:.0f}/s)")
        print(f"one worker: {delivered}/{len(ids)} delivered in {took:.1f} s: {delivered / took:.0f} deliveries/s "
              f"({took / len(ids) * 1000:.2f} ms each; POST latency p50 {statistics.median(latencies):.0f} ms, "
              f"max {max(latencies)} ms)")
        WebhookEndpoint.objects.filter(pk=endpoint.pk).delete()
    finally:
        receiver.terminate()


if __name__ == "__main__":
    main()
