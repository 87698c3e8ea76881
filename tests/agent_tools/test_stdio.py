"""`manage.py mcp --stdio`, driven by the SDK's own stdio client on the test database."""

from __future__ import annotations

import subprocess

import pytest
from mcp import Client

from tests.agent_tools.conftest import run, stdio_params
from tests.agent_tools.test_http import TOOLS
from usage import selectors
from usage.models import UsageEvent


def test_stdio_serves_the_tools_with_the_key_from_the_environment(funded, full_key):
    async def session():
        async with Client(stdio_params(full_key)) as client:
            tools = (await client.list_tools()).tools
            balance = await client.call_tool("billing_balance", {})
            recorded = await client.call_tool("billing_record_usage", {
                "idempotency_key": "stdio-1", "meter": "action.medium", "quantity": 1})
            refused = await client.call_tool("billing_reserve", {"idempotency_key": "big", "credits": "100000"})
            card = await client.read_resource("tollgate://rate-card")
            return tools, balance, recorded, refused, card

    tools, balance, recorded, refused, card = run(session())
    assert {t.name for t in tools} == TOOLS  # the same tools as over HTTP
    assert balance.content[0].text.startswith("Balance: 1,500 credits ($15.00)")
    assert balance.structured_content["balance"] == "1500"
    assert not recorded.is_error and recorded.structured_content["credits_charged"] == "2.5"
    assert refused.is_error
    assert refused.structured_content["error"]["code"] == "insufficient_credits"
    assert refused.structured_content["error"]["status"] == 402
    assert "top_up_url" in refused.structured_content["error"]
    assert '"meters"' in card.contents[0].text
    assert UsageEvent.objects.get(account__org=funded).idempotency_key == "stdio-1"
    assert selectors.account_for(funded.pk).balance_micros == 1497_500_000


def test_stdio_refuses_writes_to_a_read_only_key(funded, read_key):
    async def session():
        async with Client(stdio_params(read_key)) as client:
            return await client.call_tool("billing_record_usage", {
                "idempotency_key": "ro", "meter": "action.medium", "quantity": 1})

    result = run(session())
    assert result.is_error
    assert result.structured_content["error"]["code"] == "permission_denied"
    assert not UsageEvent.objects.filter(account__org=funded).exists()


@pytest.mark.parametrize("key, message", [
    (None, "Set TOLLGATE_API_KEY"),
    ("nope.nope", "TOLLGATE_API_KEY: That API key is not valid."),
])
def test_stdio_without_a_good_key_exits_saying_why(funded, key, message):
    params = stdio_params(key)
    done = subprocess.run([params.command, *params.args], env=params.env, cwd=params.cwd, input="",
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert message in done.stderr
    assert done.stdout == ""
