"""billing_run_receipt over MCP (streamable HTTP, the SDK's own client): the API's receipt, and its refusals."""

from __future__ import annotations

from rest_framework.test import APIClient

from orgs.models import MemberUsage, Organization
from tests.agent_tools.conftest import C, run
from tests.agent_tools.test_http import calls
from tests.factories import MembershipFactory, OrganizationFactory, UserFactory, api_key_for
from usage import services
from usage.models import GrantSource


def rest(key: str) -> APIClient:
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    return api


def test_it_answers_the_apis_receipt_with_a_line_for_people(mcp_server, funded, full_key, read_key):
    api = rest(full_key)
    for key, quantity in (("a", 2), ("b", 1)):
        api.post("/api/v1/usage/events", {"idempotency_key": key, "meter": "action.medium", "quantity": quantity,
                                          "workflow_run_id": "run-7"}, format="json")
    hold = api.post("/api/v1/holds", {"idempotency_key": "h", "credits": "3", "workflow_run_id": "run-7"},
                    format="json").json()
    api.post(f"/api/v1/holds/{hold['id']}/capture", {"credits": "1.25"}, format="json")

    async def steps(client):
        return await client.call_tool("billing_run_receipt", {"workflow_run_id": "run-7"})

    result = run(calls(mcp_server, read_key, steps))  # a read: the read scope is enough
    assert not result.is_error, result.content
    data = result.structured_content
    expected = rest(read_key).get("/api/v1/runs/run-7").json()
    assert {k: v for k, v in data.items() if k != "receipt_url"} == {
        k: v for k, v in expected.items() if k != "receipt_url"}
    assert data["receipt_url"].split("/billing/")[1] == expected["receipt_url"].split("/billing/")[1]
    assert data["totals"]["credits"] == "8.75" and data["totals"]["money"]["amount"] == "0.09"
    assert [line["idempotency_key"] for line in data["lines"]] == ["a", "b"]
    assert result.content[0].text == (
        "Run run-7: 8.75 credits ($0.09) over 2 events and 1 hold. 1.25 credits were captured on holds beyond "
        "their events. By meter: 3 medium actions: 7.5 credits.")


def test_an_unknown_or_another_orgs_run_is_a_tool_error_run_not_found(mcp_server, funded, read_key):
    other = OrganizationFactory(name="Globex", slug="globex")
    services.credits_grant(org=other, amount_micros=10 * C, source=GrantSource.PURCHASE)
    rest(api_key_for(other)[1]).post("/api/v1/usage/events", {
        "idempotency_key": "x", "meter": "action.small", "quantity": 1, "workflow_run_id": "theirs"}, format="json")

    async def steps(client):
        return [await client.call_tool("billing_run_receipt", {"workflow_run_id": run_id})
                for run_id in ("theirs", "nope")] + [
            await client.call_tool("billing_run_receipt", {}),
            await client.call_tool("billing_run_receipt", {"workflow_run_id": "theirs", "extra": 1})]

    theirs, nope, missing, extra = run(calls(mcp_server, read_key, steps))
    for result in (theirs, nope):
        assert result.is_error and '"run_not_found"' in result.content[0].text
    for result in (missing, extra):
        assert result.is_error and ("invalid_request" in result.content[0].text
                                    or "validation" in result.content[0].text.lower())


def test_members_paying_personally_are_totals_not_balances(mcp_server, funded, full_key, read_key):
    ada = UserFactory(email="ada@acme.test")
    personal = OrganizationFactory(name="Ada", slug="ada", is_personal=True)
    MembershipFactory(org=personal, user=ada, role="owner")
    MembershipFactory(org=funded, user=ada)
    services.credits_grant(org=personal, amount_micros=17 * C, source=GrantSource.PURCHASE)
    Organization.objects.filter(pk=funded.pk).update(member_usage=MemberUsage.PERSONAL)
    rest(full_key).post("/api/v1/usage/events", {"idempotency_key": "hers", "meter": "action.medium", "quantity": 3,
                                                 "member": "ada@acme.test", "workflow_run_id": "r"}, format="json")

    async def steps(client):
        return await client.call_tool("billing_run_receipt", {"workflow_run_id": "r"})

    result = run(calls(mcp_server, read_key, steps))
    assert not result.is_error, result.content
    assert result.structured_content["totals"]["paid_by_members"] == "7.5"
    assert result.structured_content["lines"][0]["paid_by"] == "member"
    text = result.content[0].text
    assert "Members paid 7.5 credits from their personal balances." in text and "9.5" not in text


def test_it_names_the_tokens_and_holds_of_a_run_as_the_api_does(mcp_server, funded, full_key, read_key):
    api = rest(full_key)
    parent = api.post("/api/v1/holds", {"idempotency_key": "p", "credits": "20", "workflow_run_id": "run-8"},
                      format="json").json()
    child = api.post("/api/v1/holds", {"idempotency_key": "c", "credits": "6", "parent_hold_id": parent["id"]},
                     format="json").json()
    token = api.post(f"/api/v1/holds/{child['id']}/tokens", {"credits": "5", "name": "search-tool"},
                     format="json").json()
    recorded = rest(token["token"]).post("/api/v1/usage/events", {
        "idempotency_key": "t1", "meter": "action.medium", "quantity": 1, "workflow_run_id": "run-8",
        "hold_id": child["id"]}, format="json")
    assert recorded.status_code == 201, recorded.content
    api.post(f"/api/v1/holds/{parent['id']}/capture", {"credits": "4"}, format="json")

    async def steps(client):
        return await client.call_tool("billing_run_receipt", {"workflow_run_id": "run-8"})

    result = run(calls(mcp_server, read_key, steps))
    assert not result.is_error, result.content
    data = result.structured_content
    expected = rest(read_key).get("/api/v1/runs/run-8").json()
    assert data["tokens"] == expected["tokens"] and data["holds"] == expected["holds"]
    assert data["lines"][0]["spending_token"] == token["prefix"] and data["lines"][0]["hold_id"] == child["id"]
    assert [(h["id"], h["parent_id"]) for h in data["holds"]] == [(parent["id"], None), (child["id"], parent["id"])]
    assert data["totals"]["credits"] == "4"  # 2.5 by the tool, 1.5 captured beyond it on the parent
    assert (f"Spending tokens: {token['prefix']} (search-tool) on hold {child['id']}, 2.5 credits over 1 event."
            in result.content[0].text)
