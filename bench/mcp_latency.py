"""Latency of billing_balance and billing_record_usage over MCP (streamable HTTP at
/mcp) next to the REST calls doing the same work, through one gunicorn, in one run.

One client at a time on loopback, keep-alive, interleaved rounds (every call
measured in every round, back to back, since the load of a shared machine moves):

  REST    GET /api/v1/balance, POST /api/v1/usage/events (httpx2)
  MCP     the SDK's client (`mcp.Client` over streamable HTTP): call_tool(...)
  MCP raw the same tools/call as one JSON-RPC POST each (httpx2), without the
          SDK client's own work: what the server adds

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/tollgate_bench REDIS_URL=redis://127.0.0.1:6379/9 \\
        flock /tmp/tollgate-bench.lock .venv/bin/python bench/mcp_latency.py [--calls 300 --rounds 3]

(Not bench/mcp.py: a script of that name would shadow the `mcp` SDK it imports.)
The target is MCP within 1.5x of REST at p50.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import time
import uuid

import logging

from _common import bench_orgs, median
from web import api_key, start_server


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


async def measure(base: str, key: str, calls: int, rounds: int) -> dict[str, list[dict]]:
    import httpx2
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    headers = {"Authorization": f"Bearer {key}"}
    run = uuid.uuid4().hex[:8]
    event = {"meter": "ai.output_tokens", "model": "gpt-5-mini", "quantity": 1000, "workflow_run_id": "bench"}
    results: dict[str, list[dict]] = {}
    rest = httpx2.AsyncClient(base_url=base, headers=headers, timeout=30)
    mcp_http = httpx2.AsyncClient(headers=headers, timeout=30)
    raw = httpx2.AsyncClient(base_url=base, timeout=30, headers={
        **headers, "Accept": "application/json, text/event-stream", "Content-Type": "application/json"})
    async with rest, mcp_http, raw, Client(streamable_http_client(f"{base}/mcp", http_client=mcp_http)) as client:
        await client.list_tools()
        version = client.session.protocol_version
        raw.headers["MCP-Protocol-Version"] = version
        n = 0

        async def rest_balance():
            r = await rest.get("/api/v1/balance")
            assert r.status_code == 200, r.text

        async def rest_event():
            nonlocal n
            n += 1
            r = await rest.post("/api/v1/usage/events", json={**event, "idempotency_key": f"{run}-rest-{n}"})
            assert r.status_code == 201, r.text

        async def mcp_balance():
            r = await client.call_tool("billing_balance", {})
            assert not r.is_error, r.content

        async def mcp_event():
            nonlocal n
            n += 1
            r = await client.call_tool("billing_record_usage", {**event, "idempotency_key": f"{run}-mcp-{n}"})
            assert not r.is_error, r.content

        def rpc(name: str, arguments: dict) -> dict:
            return {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {
                "name": name, "arguments": arguments,
                "_meta": {"io.modelcontextprotocol/protocolVersion": version,
                          "io.modelcontextprotocol/clientInfo": {"name": "bench", "version": "1"},
                          "io.modelcontextprotocol/clientCapabilities": {}}}}

        async def raw_balance():
            r = await raw.post("/mcp", content=json.dumps(rpc("billing_balance", {})),
                               headers={"Mcp-Method": "tools/call", "Mcp-Name": "billing_balance"})
            assert r.status_code == 200 and '"isError":true' not in r.text, r.text

        async def raw_event():
            nonlocal n
            n += 1
            body = rpc("billing_record_usage", {**event, "idempotency_key": f"{run}-raw-{n}"})
            r = await raw.post("/mcp", content=json.dumps(body),
                               headers={"Mcp-Method": "tools/call", "Mcp-Name": "billing_record_usage"})
            assert r.status_code == 200 and '"isError":true' not in r.text, r.text

        cases = {"rest_balance": rest_balance, "mcp_balance": mcp_balance, "raw_balance": raw_balance,
                 "rest_event": rest_event, "mcp_event": mcp_event, "raw_event": raw_event}
        for fn in cases.values():  # warm every path
            for _ in range(20):
                await fn()
        for _ in range(rounds):
            for name, fn in cases.items():
                times = []
                for _ in range(calls):
                    start = time.perf_counter()
                    await fn()
                    times.append((time.perf_counter() - start) * 1000)
                results.setdefault(name, []).append({"p50": pct(times, 50), "p99": pct(times, 99),
                                                     "mean": statistics.fmean(times)})
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=300, help="calls per case and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--port", type=int, default=8933)
    args = parser.parse_args()
    logging.getLogger("httpx2").setLevel(logging.WARNING)  # a line per request otherwise

    from django.db import connections

    (org,) = bench_orgs("bench-mcp", 1)
    key = api_key(org)
    connections.close_all()
    server = start_server(args.port, args.workers, args.threads)
    print(f"gunicorn: {args.workers} workers x {args.threads} threads; one client on loopback; "
          f"{args.rounds} interleaved rounds of {args.calls} calls per case")
    try:
        results = asyncio.run(measure(f"http://127.0.0.1:{args.port}", key, args.calls, args.rounds))
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
    merged = {name: {k: median([r[k] for r in rounds]) for k in ("p50", "p99")} for name, rounds in results.items()}
    rows = [("billing_balance", "GET /api/v1/balance", "balance"),
            ("billing_record_usage", "POST /api/v1/usage/events", "event")]
    for tool, endpoint, case in rows:
        rest, sdk, raw = merged[f"rest_{case}"], merged[f"mcp_{case}"], merged[f"raw_{case}"]
        print(f"{endpoint:<42} p50 {rest['p50']:6.2f} ms   p99 {rest['p99']:6.2f} ms")
        print(f"  {tool + ' (MCP, SDK client)':<40} p50 {sdk['p50']:6.2f} ms   p99 {sdk['p99']:6.2f} ms   "
              f"p50 {sdk['p50'] / rest['p50']:.2f}x REST")
        print(f"  {tool + ' (MCP, raw POST)':<40} p50 {raw['p50']:6.2f} ms   p99 {raw['p99']:6.2f} ms   "
              f"p50 {raw['p50'] / rest['p50']:.2f}x REST", flush=True)


if __name__ == "__main__":
    main()
