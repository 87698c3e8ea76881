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
        "paid_by": "organization", "hold_id": None, "spending_token": None, "idempotency_key": "a",
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
    assert body["lines_truncated"] is False and body["holds"] == [] and body["tokens"] == []
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


# --- holds recorded against, child holds, quotes and spending tokens ----------------------


def post(api, url, body=None):
    response = api.post(url, body or {}, format="json")
    assert response.status_code in (200, 201), response.content
    return response.json()


def usage_debited(org) -> int:
    """Every usage debit the ledger wrote for the org's account, in micro-credits."""
    return -sum(LedgerEntry.objects.filter(account__org=org, kind="usage").values_list("amount_micros", flat=True))


def total(api, run: str) -> int:
    return int(Decimal(api.get(f"/api/v1/runs/{run}").json()["totals"]["credits"]) * C)


def test_a_run_on_a_quote_a_child_hold_and_a_token_totals_what_the_ledger_debited(api, funded):
    quote = post(api, "/api/v1/estimates", {"items": [{"meter": "action.medium", "quantity": 8}], "reserve": True,
                                            "idempotency_key": "q", "workflow_run_id": "run-1"})["hold"]
    record(api, "on-quote", hold_id=quote["id"])  # 2.5, recorded while open
    child = post(api, "/api/v1/holds", {"idempotency_key": "sub", "credits": "6", "parent_hold_id": quote["id"]})
    assert child["workflow_run_id"] == "run-1"  # a child inherits its parent's run
    token = post(api, f"/api/v1/holds/{child['id']}/tokens", {"credits": "5", "name": "search-tool"})
    tool = client(token["token"])
    record(tool, "by-tool-1", hold_id=child["id"])
    record(tool, "by-tool-2", hold_id=child["id"], meter="action.small", quantity="2")  # 2 x 1
    # The sub-agent's capture by amount: 1.25 beyond its 4.5 of events.
    post(api, f"/api/v1/holds/{child['id']}/capture", {"credits": "5.75"})
    # The run's capture by amount: 3 beyond what it and its child recorded (2.5 + 5.75).
    post(api, f"/api/v1/holds/{quote['id']}/capture", {"credits": "11.25"})

    body = api.get("/api/v1/runs/run-1").json()
    lines = {line["idempotency_key"]: line for line in body["lines"]}
    assert (lines["on-quote"]["hold_id"], lines["on-quote"]["spending_token"]) == (quote["id"], None)
    assert (lines["by-tool-1"]["hold_id"], lines["by-tool-1"]["spending_token"]) == (child["id"], token["prefix"])
    holds = {h["id"]: h for h in body["holds"]}
    assert list(holds) == [quote["id"], child["id"]]
    assert (holds[quote["id"]]["parent_id"], holds[quote["id"]]["prices_locked"]) == (None, True)
    assert (holds[child["id"]]["parent_id"], holds[child["id"]]["prices_locked"]) == (quote["id"], True)
    assert holds[quote["id"]]["captured_without_events"] == "3"
    assert holds[child["id"]]["captured_without_events"] == "1.25"
    assert body["tokens"] == [{
        "prefix": token["prefix"], "name": "search-tool", "hold_id": child["id"], "credits": "5", "spent": "4.5",
        "status": "hold_closed", "expires_at": token["expires_at"], "events": 2, "events_credits": "4.5",
    }]
    assert body["totals"]["events_credits"] == "7" and body["totals"]["captured_without_events"] == "4.25"
    # Exactly what the ledger debited, no more (the parent's capture never counts its child's twice).
    assert usage_debited(funded) == 11_250_000 == total(api, "run-1")
    assert body["totals"]["credits"] == "11.25" and body["totals"]["money"]["amount"] == "0.11"


def test_a_hold_of_one_run_whose_events_name_another_is_counted_once(api, funded):
    hold = post(api, "/api/v1/holds", {"idempotency_key": "h", "credits": "20", "workflow_run_id": "run-a"})
    record(api, "b1", run="run-b", hold_id=hold["id"])
    record(api, "b2", run="run-b", hold_id=hold["id"], quantity="2")
    record(api, "a1", run="run-a", hold_id=hold["id"], meter="action.small")
    post(api, f"/api/v1/holds/{hold['id']}/capture", {"credits": "12"})  # 8.5 recorded, 3.5 more

    a = api.get("/api/v1/runs/run-a").json()
    b = api.get("/api/v1/runs/run-b").json()
    assert a["totals"]["credits"] == "4.5"  # its event, and the capture beyond every event
    assert a["holds"][0]["captured_without_events"] == "3.5" and a["holds"][0]["other_run_events"] == 2
    assert b["totals"]["credits"] == "7.5"  # its events only: the hold's capture is run-a's
    assert b["holds"][0]["workflow_run_id"] == "run-a" and b["holds"][0]["captured_without_events"] == "0"
    assert (b["holds"][0]["events"], b["holds"][0]["other_run_events"]) == (2, 1)
    assert total(api, "run-a") + total(api, "run-b") == usage_debited(funded) == 12 * C


def test_a_hold_captured_with_events_of_another_run_adds_nothing_to_its_own(api, funded):
    hold = post(api, "/api/v1/holds", {"idempotency_key": "h", "credits": "20", "workflow_run_id": "run-a"})
    record(api, "open", run="run-b", hold_id=hold["id"])
    post(api, f"/api/v1/holds/{hold['id']}/capture", {"events": [
        {"idempotency_key": "c1", "meter": "action.medium", "quantity": 1, "workflow_run_id": "run-b"},
        {"idempotency_key": "c2", "meter": "action.small", "quantity": 1, "workflow_run_id": "run-a"},
    ]})

    assert api.get("/api/v1/runs/run-a").json()["totals"]["captured_without_events"] == "0"
    assert (total(api, "run-a"), total(api, "run-b")) == (1 * C, 5 * C)
    assert total(api, "run-a") + total(api, "run-b") == usage_debited(funded)


def test_a_hold_for_no_run_counts_its_capture_in_the_one_run_its_events_name(api, funded):
    lone = post(api, "/api/v1/holds", {"idempotency_key": "lone", "credits": "10"})
    record(api, "a1", run="run-a", hold_id=lone["id"])
    post(api, f"/api/v1/holds/{lone['id']}/capture", {"credits": "4"})
    shared = post(api, "/api/v1/holds", {"idempotency_key": "shared", "credits": "10"})
    record(api, "a2", run="run-a", hold_id=shared["id"])
    record(api, "b1", run="run-b", hold_id=shared["id"])
    post(api, f"/api/v1/holds/{shared['id']}/capture", {"credits": "6"})

    a = {h["id"]: h for h in api.get("/api/v1/runs/run-a").json()["holds"]}
    assert a[lone["id"]]["captured_without_events"] == "1.5"
    # Its events name two runs: the 1 captured beyond them is neither's, and never both's.
    assert a[shared["id"]]["captured_without_events"] == "0"
    assert (total(api, "run-a"), total(api, "run-b")) == (6_500_000, 2_500_000)
    assert usage_debited(funded) == 10 * C


def test_a_child_hold_for_another_run_is_listed_with_its_parent_and_counted_in_its_own(api, funded):
    parent = post(api, "/api/v1/holds", {"idempotency_key": "p", "credits": "20", "workflow_run_id": "run-a"})
    child = post(api, "/api/v1/holds", {"idempotency_key": "c", "credits": "8", "parent_hold_id": parent["id"],
                                        "workflow_run_id": "run-sub"})
    record(api, "s1", run="run-sub", hold_id=child["id"])
    post(api, f"/api/v1/holds/{child['id']}/capture", {"credits": "3"})
    post(api, f"/api/v1/holds/{parent['id']}/capture", {"credits": "5"})

    a = api.get("/api/v1/runs/run-a").json()
    assert [(h["id"], h["parent_id"], h["workflow_run_id"]) for h in a["holds"]] == [
        (parent["id"], None, "run-a"), (child["id"], parent["id"], "run-sub")]
    assert [h["captured_without_events"] for h in a["holds"]] == ["2", "0"]
    sub = api.get("/api/v1/runs/run-sub").json()
    assert sub["totals"]["credits"] == "3" and sub["holds"][0]["captured_without_events"] == "0.5"
    assert total(api, "run-a") + total(api, "run-sub") == usage_debited(funded) == 5 * C


def test_another_org_sees_neither_the_run_nor_its_token(api, funded, other_org):
    hold = post(api, "/api/v1/holds", {"idempotency_key": "h", "credits": "10", "workflow_run_id": "run-1"})
    token = post(api, f"/api/v1/holds/{hold['id']}/tokens", {"credits": "5"})
    record(client(token["token"]), "t1", hold_id=hold["id"])
    _key, other_secret = api_key_for(other_org)
    response = client(other_secret).get("/api/v1/runs/run-1")
    assert response.status_code == 404 and token["prefix"] not in response.content.decode()
    # A token reads no receipt: it records usage, nothing else.
    assert client(token["token"]).get("/api/v1/runs/run-1").status_code == 403


def test_a_token_spending_a_members_hold_shows_who_paid_and_never_her_balance(api, funded, ada):
    _user, personal = ada
    Organization.objects.filter(pk=funded.pk).update(member_usage=MemberUsage.PERSONAL)
    hold = post(api, "/api/v1/holds", {"idempotency_key": "h", "credits": "10", "workflow_run_id": "run-1",
                                       "member": "ada@acme.test"})
    token = post(api, f"/api/v1/holds/{hold['id']}/tokens", {"credits": "6"})
    record(client(token["token"]), "t1", hold_id=hold["id"], quantity="2")  # 5 from Ada's 17
    post(api, f"/api/v1/holds/{hold['id']}/capture", {"credits": "6"})  # 1 more

    response = api.get("/api/v1/runs/run-1")
    body = response.json()
    assert body["lines"][0]["paid_by"] == "member" and body["lines"][0]["spending_token"] == token["prefix"]
    assert body["tokens"][0]["spent"] == "5" and body["holds"][0]["captured_without_events"] == "1"
    assert body["totals"]["paid_by_members"] == "6" and body["totals"]["credits"] == "6"
    assert usage_debited(personal) == 6 * C and usage_debited(funded) == 0
    ada_account = CreditAccount.objects.get(org=personal)
    assert ada_account.balance_micros == 11 * C
    assert "balance" not in response.content.decode() and '"11"' not in response.content.decode()
    _key, ada_secret = api_key_for(personal)
    assert client(ada_secret).get("/api/v1/runs/run-1").status_code == 404
