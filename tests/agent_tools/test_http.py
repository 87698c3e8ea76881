"""The MCP server over streamable HTTP at /mcp, driven by the SDK's own client."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from decimal import Decimal

import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from rest_framework.test import APIClient

from accounts.authentication import APIKeyRateThrottle
from agent_tools import http as agent_http
from agent_tools import tools
from agent_tools.http import _SERVER
from orgs.models import MemberUsage
from orgs.services import org_member_usage_set
from tests.factories import MembershipFactory, OrganizationFactory, UserFactory
from tests.agent_tools.conftest import C, run
from usage import selectors, services
from usage.models import GrantSource, Hold, HoldStatus, UsageEvent

TOOLS = {"billing_balance", "billing_usage", "billing_estimate", "billing_history", "billing_packages",
         "billing_entitlements", "billing_run_receipt", "billing_reserve", "billing_capture", "billing_release",
         "billing_record_usage"}
EVENT = {"meter": "action.medium", "quantity": 2, "workflow_run_id": "run-1"}


def session(url: str, key: str | None):
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    http = httpx2.AsyncClient(headers=headers, timeout=30)
    return http, Client(streamable_http_client(f"{url}/mcp", http_client=http))


async def calls(url: str, key: str, steps):
    """Open one session and run `steps(client)`; its result."""
    http, client = session(url, key)
    async with http, client:
        return await steps(client)


def test_lists_every_tool_with_its_schemas(mcp_server, full_key):
    async def steps(client):
        return (await client.list_tools()).tools, (await client.list_resources()).resources

    tools, resources = run(calls(mcp_server, full_key, steps))
    assert {t.name for t in tools} == TOOLS
    for tool in tools:
        assert tool.input_schema["type"] == "object", tool.name
        assert tool.output_schema["type"] == "object", tool.name
        assert tool.description
    by_name = {t.name: t for t in tools}
    assert by_name["billing_balance"].annotations.read_only_hint is True
    assert by_name["billing_record_usage"].annotations.read_only_hint is False
    assert {r.uri for r in resources} == {"tollgate://rate-card", "tollgate://catalog"}


def test_each_call_checks_its_headers_against_the_listed_schema_without_listing_the_tools(mcp_server, full_key):
    """The SDK checks a call's `Mcp-Param-*` headers against the tool's input
    schema; the server hands it the schema tools/list shows, so no call pays a
    whole listing."""
    async def steps(client):
        return (await client.list_tools()).tools

    tools = run(calls(mcp_server, full_key, steps))
    assert {t.name: _SERVER.get_tool_input_schema(t.name) for t in tools} == {t.name: t.input_schema for t in tools}
    assert _SERVER.get_tool_input_schema("no_such_tool") is None


def test_every_tool_answers_as_the_api_does(mcp_server, funded, full_key):
    rest = APIClient()
    rest.credentials(HTTP_AUTHORIZATION=f"Bearer {full_key}")
    balance_before = rest.get("/api/v1/balance").json()
    estimate_rest = rest.post("/api/v1/estimates", {"workflow": "thread"}, format="json").json()

    async def steps(client):
        out = {}
        out["balance"] = await client.call_tool("billing_balance", {})
        out["estimate"] = await client.call_tool("billing_estimate", {"workflow": "thread"})
        out["estimate_items"] = await client.call_tool(
            "billing_estimate", {"items": [{"meter": "ai.output_tokens", "model": "gpt-5-mini", "low": 1000, "high": 4000}]})
        out["packages"] = await client.call_tool("billing_packages", {})
        out["entitlements"] = await client.call_tool("billing_entitlements", {})
        out["record"] = await client.call_tool("billing_record_usage", {**EVENT, "idempotency_key": "ev-1"})
        out["replay"] = await client.call_tool("billing_record_usage", {**EVENT, "idempotency_key": "ev-1"})
        out["reserve"] = await client.call_tool("billing_reserve", {"idempotency_key": "run-1", "credits": "50"})
        hold_id = out["reserve"].structured_content["id"]
        out["capture"] = await client.call_tool("billing_capture", {"hold_id": hold_id, "credits": "12.5"})
        out["reserve2"] = await client.call_tool("billing_reserve", {"idempotency_key": "run-2", "credits": 20})
        out["release"] = await client.call_tool("billing_release", {"hold_id": out["reserve2"].structured_content["id"]})
        out["usage"] = await client.call_tool("billing_usage", {"group_by": "workflow_run"})
        out["history"] = await client.call_tool("billing_history", {"limit": 2})
        out["history2"] = await client.call_tool("billing_history", {"limit": 2, "cursor": out["history"].structured_content["next_cursor"]})
        out["rate_card"] = await client.read_resource("tollgate://rate-card")
        out["catalog"] = await client.read_resource("tollgate://catalog")
        return out

    out = run(calls(mcp_server, full_key, steps))
    for name, result in out.items():
        if name not in ("rate_card", "catalog"):
            assert not result.is_error, (name, result.content)

    # Reads: the REST answer, plus the money beside it.
    balance = out["balance"].structured_content
    assert {k: v for k, v in balance.items() if k != "money"} == balance_before
    assert balance["money"] == {"currency": "usd", "balance": "15.00", "available": "15.00"}
    assert out["balance"].content[0].text.startswith("Balance: 1,500 credits ($15.00)")
    assert out["estimate"].structured_content == estimate_rest
    assert out["estimate"].content[0].text.startswith("A thread would cost ")
    assert out["estimate_items"].structured_content["credits"]["low"] != out["estimate_items"].structured_content["credits"]["high"]
    assert [p["code"] for p in out["packages"].structured_content["data"]] == [
        p["code"] for p in rest.get("/api/v1/packages").json()["data"]]

    # Writes: recorded once, through the services.
    event = out["record"].structured_content
    assert event["credits_charged"] == "5" and event["balance_after"] == "1495"
    assert out["replay"].structured_content["id"] == event["id"]
    assert out["replay"].content[0].text.startswith("Already recorded")
    assert UsageEvent.objects.filter(account__org=funded, idempotency_key="ev-1").count() == 1
    assert out["capture"].structured_content["hold"]["status"] == "captured"
    assert out["capture"].structured_content["balance_after"] == "1482.5"
    assert Hold.objects.get(pk=out["release"].structured_content["id"]).status == HoldStatus.RELEASED
    assert selectors.account_for(funded.pk).balance_micros == 1482_500_000

    # Usage and history read what was just written.
    rows = out["usage"].structured_content["rows"]
    assert [(r["key"], r["credits"]) for r in rows] == [("run-1", "5")]
    history = out["history"].structured_content
    assert len(history["entries"]) == 2 and history["next_cursor"]
    assert history["workflow_runs"][0]["run_id"] == "run-1"
    older = out["history2"].structured_content["entries"]
    assert older and older[0]["id"] < history["entries"][-1]["id"]

    # Resources.
    card = json.loads(out["rate_card"].contents[0].text)
    assert "action.medium" in {m["code"] for m in card["meters"]} and "thread" in card["workflows"]
    catalog = json.loads(out["catalog"].contents[0].text)
    assert catalog["packs"] and catalog["plans"]

    # Last: GET /subscription starts Free on first need (a read tool never writes).
    entitlements = out["entitlements"].structured_content
    # Asked before the usage above: everything but the credits still matches.
    now = rest.get("/api/v1/entitlements").json()
    assert entitlements["limits"]["credits"]["available"] == "1500"
    entitlements["limits"].pop("credits"), now["limits"].pop("credits")
    assert entitlements == now
    assert entitlements["plan"] == "free" and "basic_workflows" in entitlements["features"]
    subscription = rest.get("/api/v1/subscription").json()
    assert entitlements["features"] == subscription["features"]


def test_entitlements_tool_checks_a_feature_as_the_api_does(mcp_server, funded, full_key):
    async def steps(client):
        return (await client.call_tool("billing_entitlements", {"feature": "basic_workflows"}),
                await client.call_tool("billing_entitlements", {"feature": "media_generation"}),
                await client.call_tool("billing_entitlements", {"feature": "teleportation"}))

    allowed, refused, unknown = run(calls(mcp_server, full_key, steps))
    assert not allowed.is_error and allowed.structured_content["allowed"] is True
    assert refused.is_error
    error = refused.structured_content["error"]
    assert error["code"] == "feature_not_in_plan" and error["status"] == 403
    assert error["required_feature"] == "media_generation" and error["upgrade_plan"] == "pro"
    assert error["upgrade_url"].endswith("/billing/plans/#plan-pro")
    assert unknown.is_error and unknown.structured_content["error"]["code"] == "unknown_feature"


def test_reserve_checks_the_meters_it_names_as_the_api_does(mcp_server, funded, full_key):
    async def steps(client):
        return (await client.call_tool("billing_reserve", {"idempotency_key": "m1", "credits": "5",
                                                           "meters": ["image.generated"]}),
                await client.call_tool("billing_reserve", {"idempotency_key": "m2", "credits": "5", "meters": ["nope"]}),
                await client.call_tool("billing_reserve", {"idempotency_key": "m3", "credits": "5",
                                                           "meters": ["action.medium"]}))

    gated, unknown, fine = run(calls(mcp_server, full_key, steps))
    assert gated.is_error and gated.structured_content["error"]["code"] == "feature_not_in_plan"
    assert unknown.is_error and unknown.structured_content["error"]["code"] == "unknown_meter"
    assert not fine.is_error, fine.content
    assert list(Hold.objects.filter(account__org=funded).values_list("idempotency_key", flat=True)) == ["m3"]


def test_insufficient_credits_is_a_tool_error_with_the_top_up_link(mcp_server, funded, full_key):
    async def steps(client):
        return (await client.call_tool("billing_reserve", {"idempotency_key": "big", "credits": "5000"}),
                await client.call_tool("billing_record_usage", {"idempotency_key": "x", "meter": "action.medium",
                                                                 "quantity": 10_000}))

    reserve, record = run(calls(mcp_server, full_key, steps))
    for result in (reserve, record):
        assert result.is_error
        error = result.structured_content["error"]
        assert error["code"] == "insufficient_credits" and error["type"] == "payment_required"
        assert error["status"] == 402
        assert error["top_up_url"].endswith("/billing/top-up/")
        assert "Top up: " in result.content[0].text
        assert json.loads(result.content[0].text.split("\n", 1)[1]) == {"error": error}
    assert reserve.structured_content["error"]["required"] == "5000"
    assert selectors.account_for(funded.pk).held_micros == 0
    assert not UsageEvent.objects.filter(account__org=funded).exists()


def test_bad_input_is_invalid_request_and_records_nothing(mcp_server, funded, full_key):
    async def steps(client):
        return (await client.call_tool("billing_record_usage", {"idempotency_key": "y", "meter": "nope", "quantity": 1}),
                await client.call_tool("billing_reserve", {"idempotency_key": "z", "credits": "1.0000001"}),
                await client.call_tool("billing_history", {"cursor": "not-ours"}),
                await client.call_tool("billing_capture", {"hold_id": 999999, "credits": "1"}),
                await client.call_tool("billing_history", {"kind": "nope"}),
                await client.call_tool("billing_nope", {}),
                await client.call_tool("billing_estimate", {"workflow": "thread", "reserve": True,
                                                            "idempotency_key": "q"}))

    meter, amount, cursor, hold, kind, tool, quote = run(calls(mcp_server, full_key, steps))
    # Asked for a quote, the read tool says it reserves nothing rather than answering a bare estimate.
    assert quote.is_error and quote.structured_content["error"]["code"] == "invalid_request"
    assert "billing_reserve" in quote.structured_content["error"]["fields"]["reserve"][0]
    assert not Hold.objects.filter(account__org=funded).exists()
    assert kind.structured_content["error"]["code"] == "invalid_kind"
    assert tool.is_error
    assert meter.structured_content["error"]["code"] == "unknown_meter"
    assert amount.structured_content["error"]["code"] == "invalid_request"
    assert "credits" in amount.structured_content["error"]["fields"]
    assert cursor.structured_content["error"]["fields"] == {"cursor": ["Not a cursor this tool gave: pass `next_cursor`."]}
    assert hold.structured_content["error"]["status"] == 404
    assert not UsageEvent.objects.filter(account__org=funded).exists()


def test_write_tools_need_the_usage_write_scope(mcp_server, funded, read_key):
    async def steps(client):
        return (await client.call_tool("billing_balance", {}),
                await client.call_tool("billing_record_usage", {**EVENT, "idempotency_key": "ro"}),
                await client.call_tool("billing_reserve", {"idempotency_key": "ro", "credits": "1"}))

    balance, record, reserve = run(calls(mcp_server, read_key, steps))
    assert not balance.is_error
    for result in (record, reserve):
        assert result.is_error
        assert result.structured_content["error"] == {
            "type": "permission_denied", "code": "permission_denied", "status": 403,
            "message": "This API key lacks the `usage:write` scope."}
    assert not UsageEvent.objects.filter(account__org=funded).exists()
    assert selectors.account_for(funded.pk).held_micros == 0


@pytest.mark.parametrize("header", [None, "Bearer nope.nope", "Basic abc"])
def test_a_missing_or_wrong_key_is_refused_with_401(mcp_server, funded, header):
    headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
    if header:
        headers["Authorization"] = header
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
    response = httpx2.post(f"{mcp_server}/mcp", json=body, headers=headers)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="tollgate"'
    assert response.json()["error"]["code"] == "authentication_failed"

    async def steps(client):
        return await client.list_tools()

    with pytest.raises(BaseException):  # noqa: B017  the SDK's client cannot connect at all
        run(calls(mcp_server, header.split(" ", 1)[1] if header and header.startswith("Bearer") else None, steps))


def test_a_revoked_key_is_refused(mcp_server, funded, full_key):
    from accounts.models import OrgAPIKey
    from accounts.services import api_key_revoke

    api_key_revoke(org=funded, key=OrgAPIKey.objects.get(prefix=full_key.split(".")[0]))
    response = httpx2.post(f"{mcp_server}/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
                           headers={"Authorization": f"Bearer {full_key}", "Accept": "application/json, text/event-stream"})
    assert response.status_code == 401
    assert response.json()["error"]["message"] == "That API key has been revoked."


def test_mcp_requests_count_against_the_keys_rate_limit(mcp_server, funded, full_key, monkeypatch):
    monkeypatch.setattr(APIKeyRateThrottle, "THROTTLE_RATES", {"api_key": "3/min"})
    rest = APIClient()
    rest.credentials(HTTP_AUTHORIZATION=f"Bearer {full_key}")
    assert rest.get("/api/v1/balance").status_code == 200  # one of the three, over REST
    headers = {"Authorization": f"Bearer {full_key}", "Accept": "application/json, text/event-stream"}
    statuses = [httpx2.post(f"{mcp_server}/mcp", json={"jsonrpc": "2.0", "id": i, "method": "ping"}, headers=headers)
                for i in range(3)]
    assert [r.status_code for r in statuses] == [200, 200, 429]
    assert statuses[2].json()["error"]["code"] == "rate_limited"
    assert int(statuses[2].headers["Retry-After"]) >= 1


def test_the_rest_of_the_site_is_still_django(mcp_server, funded, full_key):
    response = httpx2.get(f"{mcp_server}/api/v1/balance", headers={"Authorization": f"Bearer {full_key}"})
    assert response.status_code == 200
    assert Decimal(response.json()["balance"]) == 1500
    assert httpx2.get(f"{mcp_server}/mcp/other").status_code == 404


def test_a_handshake_era_client_is_served_too(mcp_server, funded, full_key):
    """A client on the initialize handshake (protocol versions before 2026-07-28, as
    most desktop clients speak today) over the same stateless endpoint; its
    standalone GET stream is answered 405, as the spec allows."""
    async def session():
        http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {full_key}"}, timeout=30)
        async with http, Client(streamable_http_client(f"{mcp_server}/mcp", http_client=http), mode="legacy") as client:
            return client.session.protocol_version, await client.call_tool("billing_balance", {})

    version, balance = run(session())
    assert version < "2026-07-28"
    assert balance.structured_content["balance"] == "1500"
    get = httpx2.get(f"{mcp_server}/mcp", headers={"Authorization": f"Bearer {full_key}", "Accept": "text/event-stream"})
    assert get.status_code == 405
    assert get.json()["error"]["code"] == "method_not_allowed"


def test_a_hold_is_captured_with_the_runs_usage_events(mcp_server, funded, full_key):
    async def steps(client):
        hold = await client.call_tool("billing_reserve", {"idempotency_key": "run-9", "credits": "10",
                                                          "workflow_run_id": "run-9"})
        return await client.call_tool("billing_capture", {"hold_id": hold.structured_content["id"], "events": [
            {**EVENT, "idempotency_key": "run-9:a", "workflow_run_id": "run-9"},
            {**EVENT, "idempotency_key": "run-9:b", "workflow_run_id": "run-9"}]})

    capture = run(calls(mcp_server, full_key, steps))
    assert not capture.is_error, capture.content
    assert capture.structured_content["hold"]["captured"] == "10"
    assert [e["idempotency_key"] for e in capture.structured_content["events"]] == ["run-9:a", "run-9:b"]
    assert capture.structured_content["balance_after"] == "1490"
    assert UsageEvent.objects.filter(account__org=funded, hold__isnull=False).count() == 2


def test_concurrent_calls_each_run_once_in_their_own_request(mcp_server, funded, full_key):
    """Ten calls at once: each request's Django work runs in its own server thread
    (handed back from the SDK's event loop) and every event is debited once."""
    import asyncio

    async def steps(client):
        return await asyncio.gather(*[
            client.call_tool("billing_record_usage", {**EVENT, "idempotency_key": f"c-{i}"}) for i in range(10)])

    results = run(calls(mcp_server, full_key, steps))
    assert [r.is_error for r in results] == [False] * 10
    assert sorted(r.structured_content["idempotency_key"] for r in results) == sorted(f"c-{i}" for i in range(10))
    assert UsageEvent.objects.filter(account__org=funded).count() == 10
    assert selectors.account_for(funded.pk).balance_micros == 1450 * C


def test_usage_a_member_pays_for_never_shows_their_balance(mcp_server, funded, full_key):
    ada = UserFactory(email="ada@example.test")
    personal = OrganizationFactory(slug="ada", is_personal=True)
    MembershipFactory(org=personal, user=ada, role="owner")
    MembershipFactory(org=funded, user=ada, role="member")
    services.credits_grant(org=personal, amount_micros=777 * C, source=GrantSource.PURCHASE)
    org_member_usage_set(org=funded, member_usage=MemberUsage.PERSONAL)

    async def steps(client):
        return await client.call_tool("billing_record_usage", {**EVENT, "idempotency_key": "m-1",
                                                               "member": "ada@example.test"})

    result = run(calls(mcp_server, full_key, steps))
    assert not result.is_error
    assert result.structured_content["paid_by"] == "member" and result.structured_content["balance_after"] is None
    text = result.content[0].text
    assert "from their personal balance" in text and "772" not in text and "Balance" not in text


def test_usage_recorded_against_a_hold_is_captured_with_no_amount(mcp_server, funded, full_key):
    async def steps(client):
        hold = await client.call_tool("billing_reserve", {"idempotency_key": "run-7", "credits": "10"})
        hold_id = hold.structured_content["id"]
        recorded = await client.call_tool("billing_record_usage", {**EVENT, "idempotency_key": "run-7:a",
                                                                   "hold_id": hold_id})
        return recorded, await client.call_tool("billing_capture", {"hold_id": hold_id})

    recorded, capture = run(calls(mcp_server, full_key, steps))
    assert not recorded.is_error and not capture.is_error, (recorded.content, capture.content)
    assert recorded.structured_content["hold_id"] == capture.structured_content["hold"]["id"]
    hold = capture.structured_content["hold"]
    assert (hold["status"], hold["recorded"], hold["captured"], hold["left"]) == ("captured", "5", "5", "0")
    assert capture.structured_content["balance_after"] == "1495"
    assert selectors.account_for(funded.pk).held_micros == 0


def test_a_capture_beyond_the_hold_says_where_the_rest_came_from(mcp_server, funded, full_key):
    async def steps(client):
        hold = await client.call_tool("billing_reserve", {"idempotency_key": "run-small", "credits": "2"})
        hold_id = hold.structured_content["id"]
        await client.call_tool("billing_record_usage", {**EVENT, "idempotency_key": "run-small:a", "hold_id": hold_id})
        return hold_id, await client.call_tool("billing_capture", {"hold_id": hold_id})

    hold_id, capture = run(calls(mcp_server, full_key, steps))
    assert not capture.is_error, capture.content
    assert capture.structured_content["hold"]["captured"] == "5"
    assert capture.content[0].text.startswith(
        f"Captured 5 credits (hold {hold_id} reserved 2; the other 3 came from the balance). Balance: 1,495 credits")


def test_an_agent_hands_a_sub_agent_a_child_hold(mcp_server, funded, full_key):
    async def steps(client):
        parent = await client.call_tool("billing_reserve", {"idempotency_key": "run-8", "credits": "20"})
        parent_id = parent.structured_content["id"]
        child = await client.call_tool("billing_reserve", {"idempotency_key": "run-8:sub", "credits": "5",
                                                           "parent_hold_id": parent_id})
        too_much = await client.call_tool("billing_reserve", {"idempotency_key": "run-8:big", "credits": "16",
                                                              "parent_hold_id": parent_id})
        return child, too_much

    child, too_much = run(calls(mcp_server, full_key, steps))
    assert not child.is_error, child.content
    assert (child.structured_content["depth"], child.structured_content["credits"]) == (1, "5")
    assert too_much.is_error and "parent_hold_insufficient" in too_much.content[0].text
    assert selectors.account_for(funded.pk).held_micros == 20 * C


def test_a_spending_token_is_refused_with_403_token_not_allowed(mcp_server, funded, full_key):
    hold = services.hold_create(org=funded, amount_micros=5 * C)
    _token, secret = services.spending_token_create(org=funded, hold_id=hold.pk)
    headers = {"Authorization": f"Bearer {secret}", "Accept": "application/json, text/event-stream"}

    response = httpx2.post(f"{mcp_server}/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
                           headers=headers)

    assert response.status_code == 403
    assert response.json()["error"]["code"] == "token_not_allowed"


def test_a_call_over_its_time_is_answered_504_and_the_next_one_is_served(mcp_server, funded, full_key, monkeypatch):
    """A request is bounded, Django work included (the loop's clock runs while it is
    stopped for it): past EXCHANGE_TIMEOUT it answers 504 in the envelope, and the
    thread's loop serves the next request as before."""
    spec = tools.TOOLS["billing_balance"]

    def slow(check, args):
        time.sleep(0.5)
        return spec.fn(check, args)

    monkeypatch.setattr(agent_http, "EXCHANGE_TIMEOUT", 0.2)
    monkeypatch.setitem(tools.TOOLS, "billing_balance", dataclasses.replace(spec, fn=slow))
    response = httpx2.post(f"{mcp_server}/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {
        "name": "billing_balance", "arguments": {}}}, headers={
        "Authorization": f"Bearer {full_key}", "Accept": "application/json, text/event-stream"}, timeout=30)
    assert response.status_code == 504
    assert response.json()["error"]["code"] == "timeout"

    monkeypatch.setitem(tools.TOOLS, "billing_balance", spec)
    monkeypatch.setattr(agent_http, "EXCHANGE_TIMEOUT", 120.0)

    async def steps(client):
        return await client.call_tool("billing_balance", {})

    result = run(calls(mcp_server, full_key, steps))
    assert not result.is_error
    assert result.structured_content["balance"] == "1500"


def test_a_failure_inside_the_sdk_is_a_logged_500_in_the_envelope(mcp_server, funded, full_key, monkeypatch, caplog):
    class Broken:
        def __init__(self, *args, **kwargs):
            pass

        def run(self):
            raise RuntimeError("the SDK fell over")

    monkeypatch.setattr(agent_http, "StreamableHTTPSessionManager", Broken)
    response = httpx2.post(f"{mcp_server}/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"}, headers={
        "Authorization": f"Bearer {full_key}", "Accept": "application/json, text/event-stream"}, timeout=30)
    assert response.status_code == 500
    assert response.json()["error"]["code"] == "server_error"
    assert "MCP request failed" in caplog.text
