"""GET /api/v1/runs/{workflow_run_id}: one workflow run of the caller's organization, itemised."""

from decimal import Decimal

import pytest
from rest_framework.test import APIClient

from orgs.models import MemberUsage, Organization
from tests.factories import MembershipFactory, OrganizationFactory, UserFactory, api_key_for
from usage import selectors, services
from usage.models import CreditAccount, GrantSource, LedgerEntry, UsageEvent

pytestmark = pytest.mark.django_db

C = 1_000_000


def client(secret: str) -> APIClient:
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return api


def record(api, key: str, run: str = "run-1", **fields):
    body = {"idempotency_key": key, "meter": "action.medium", "quantity": "1", "workflow_run_id": run, **fields}
    response = api.post("/api/v1/usage/events", body, format="json")
    assert response.status_code == 201, response.content
    return response.json()


@pytest.fixture
def funded(org):
    services.credits_grant(org=org, amount_micros=1000 * C, source=GrantSource.PURCHASE)
    return org


def test_it_itemises_every_event_of_the_run_with_exact_totals(api, funded, member):
    first = record(api, "a", quantity="2")  # 2 medium actions: 5 credits
    record(api, "b", meter="ai.output_tokens", model="gpt-5-mini", quantity="12345", member="member@acme.test")
    record(api, "c", run="run-2")
    record(api, "d", run="")

    response = api.get("/api/v1/runs/run-1")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["workflow_run_id"] == "run-1"
    assert [line["idempotency_key"] for line in body["lines"]] == ["a", "b"]
    line = body["lines"][0]
    assert line == {
        "event_id": first["id"], "occurred_at": first["occurred_at"], "meter": "action.medium", "model": "",
        "quantity": "2", "credits_per_unit": "2.5", "credits": "5", "billing_mode": "platform_key", "member": None,
        "paid_by": "organization", "hold_id": None, "idempotency_key": "a",
    }
    assert body["lines"][1]["member"] == "member@acme.test" and body["lines"][1]["model"] == "gpt-5-mini"
    assert body["lines"][1]["credits"] == "3.7035"
    # Totals are the exact sum of what the ledger debited for these events, in credits and money.
    debited = -sum(LedgerEntry.objects.filter(usage_events__workflow_run_id="run-1").values_list("amount_micros", flat=True))
    assert debited == 8_703_500
    assert body["totals"] == {
        "credits": "8.7035", "events": 2, "events_credits": "8.7035", "captured_without_events": "0",
        "paid_by_organization": "8.7035", "paid_by_members": "0",
        "money": {"currency": "usd", "amount": "0.09", "credit_price": "0.01"},
    }
    assert [(m["meter"], m["quantity"], m["credits"], m["events"]) for m in body["by_meter"]] == [
        ("action.medium", "2", "5", 1), ("ai.output_tokens", "12345", "3.7035", 1)]
    assert body["lines_truncated"] is False and body["holds"] == []
    assert body["receipt_url"].endswith("/billing/usage/runs/run-1/?org=acme")


def test_it_lists_the_holds_of_the_run_and_counts_a_capture_without_events(api, funded):
    by_events = api.post("/api/v1/holds", {"idempotency_key": "h1", "credits": "50", "workflow_run_id": "run-1"},
                         format="json").json()
    captured = api.post(f"/api/v1/holds/{by_events['id']}/capture", {"events": [
        {"idempotency_key": "e1", "meter": "action.medium", "quantity": 1, "workflow_run_id": "run-1"},
        {"idempotency_key": "e2", "meter": "action.small", "quantity": 3, "workflow_run_id": "run-1"},
    ]}, format="json")
    assert captured.status_code == 200, captured.content
    by_amount = api.post("/api/v1/holds", {"idempotency_key": "h2", "credits": "10", "workflow_run_id": "run-1"},
                         format="json").json()
    assert api.post(f"/api/v1/holds/{by_amount['id']}/capture", {"credits": "4.25"}, format="json").status_code == 200
    released = api.post("/api/v1/holds", {"idempotency_key": "h3", "credits": "7", "workflow_run_id": "run-1"},
                        format="json").json()
    api.post(f"/api/v1/holds/{released['id']}/release", format="json")
    api.post("/api/v1/holds", {"idempotency_key": "h4", "credits": "7", "workflow_run_id": "run-9"}, format="json")

    body = api.get("/api/v1/runs/run-1").json()
    holds = {h["id"]: h for h in body["holds"]}
    assert list(holds) == [by_events["id"], by_amount["id"], released["id"]]
    first = holds[by_events["id"]]
    assert (first["status"], first["reserved"], first["captured"], first["events"], first["captured_without_events"]) \
        == ("captured", "50", "5.5", 2, "0")
    assert holds[by_amount["id"]]["captured"] == "4.25" and holds[by_amount["id"]]["captured_without_events"] == "4.25"
    assert holds[released["id"]]["status"] == "released" and holds[released["id"]]["captured"] is None
    assert {line["hold_id"] for line in body["lines"]} == {by_events["id"]}
    # 2.5 + 3 x 1 for the events, and the capture by amount: the ledger's debits, exactly.
    assert body["totals"]["events_credits"] == "5.5"
    assert body["totals"]["captured_without_events"] == "4.25"
    assert body["totals"]["credits"] == "9.75" and body["totals"]["money"]["amount"] == "0.10"
    assert selectors.account_for(funded.pk).balance_micros == 1000 * C - 9_750_000


def test_a_run_with_only_a_hold_has_a_receipt(api, funded):
    api.post("/api/v1/holds", {"idempotency_key": "h", "credits": "5", "workflow_run_id": "waiting"}, format="json")
    body = api.get("/api/v1/runs/waiting").json()
    assert body["lines"] == [] and body["holds"][0]["status"] == "open" and body["totals"]["credits"] == "0"
    assert body["first_at"] is None


def test_an_unknown_run_or_another_orgs_is_run_not_found(api, funded, other_org):
    services.credits_grant(org=other_org, amount_micros=100 * C, source=GrantSource.PURCHASE)
    _key, other_secret = api_key_for(other_org)
    record(client(other_secret), "x", run="theirs")
    record(client(other_secret), "y", run="shared")
    record(api, "z", run="shared")

    for run in ("nope", "theirs"):
        response = api.get(f"/api/v1/runs/{run}")
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "run_not_found"
    # The same run id in two organizations: each sees its own lines only.
    assert [line["idempotency_key"] for line in api.get("/api/v1/runs/shared").json()["lines"]] == ["z"]
    assert client(other_secret).get("/api/v1/runs/theirs").status_code == 200


def test_a_run_id_may_hold_a_slash_and_odd_characters(api, funded):
    record(api, "a", run="batch/7 étape#2")
    response = api.get("/api/v1/runs/batch/7%20%C3%A9tape%232")
    assert response.status_code == 200 and response.json()["workflow_run_id"] == "batch/7 étape#2"
    assert api.get("/api/v1/runs/" + "x" * 300).status_code == 404


def test_it_needs_an_api_key(funded):
    assert APIClient().get("/api/v1/runs/run-1").status_code == 401


# --- members paying personally ----------------------------------------------------------


@pytest.fixture
def ada(org):
    user = UserFactory(email="ada@acme.test")
    personal = OrganizationFactory(name="Ada", slug="ada", is_personal=True)
    MembershipFactory(org=personal, user=user, role="owner")
    MembershipFactory(org=org, user=user)
    services.credits_grant(org=personal, amount_micros=17 * C, source=GrantSource.PURCHASE)
    return user, personal


def test_members_usage_shows_who_paid_and_totals_never_their_balance(api, funded, ada):
    _user, personal = ada
    record(api, "pooled", quantity="2")
    Organization.objects.filter(pk=funded.pk).update(member_usage=MemberUsage.PERSONAL)
    record(api, "hers", member="ada@acme.test", quantity="3")  # 7.5 credits from Ada's 17
    hold = api.post("/api/v1/holds", {"idempotency_key": "h", "credits": "1", "workflow_run_id": "run-1",
                                      "member": "ada@acme.test"}, format="json").json()

    response = api.get("/api/v1/runs/run-1")
    body = response.json()
    assert [(line["idempotency_key"], line["paid_by"], line["member"]) for line in body["lines"]] == [
        ("pooled", "organization", None), ("hers", "member", "ada@acme.test")]
    assert body["totals"]["paid_by_organization"] == "5" and body["totals"]["paid_by_members"] == "7.5"
    assert body["totals"]["credits"] == "12.5"
    assert body["holds"][0]["id"] == hold["id"] and body["holds"][0]["paid_by"] == "member"
    # Ada's balance (17 - 7.5 - 1 held) appears nowhere, in no form.
    ada_account = CreditAccount.objects.get(org=personal)
    assert ada_account.balance_micros == 9_500_000
    text = response.content.decode()
    assert "balance" not in text
    assert '"9.5"' not in text and '"8.5"' not in text
    # Ada's own organization does not see the org's run as its own.
    assert UsageEvent.objects.filter(account=ada_account, workflow_run_id="run-1").exists()
    _key, ada_secret = api_key_for(personal)
    assert client(ada_secret).get("/api/v1/runs/run-1").status_code == 404


def test_the_lines_stop_at_the_limit_and_the_totals_do_not(api, funded):
    for n in range(5):
        record(api, f"e{n}")
    receipt = selectors.run_receipt(funded, "run-1", line_limit=3)
    assert len(receipt.lines) == 3 and receipt.line_count == 5 and receipt.truncated
    assert receipt.total_micros == 5 * 2_500_000 and receipt.total_money == Decimal("0.13")
    assert [line.idempotency_key for line in selectors.run_receipt_lines(funded, "run-1")] == [f"e{n}" for n in range(5)]
