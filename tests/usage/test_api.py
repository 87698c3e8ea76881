"""The usage API: every endpoint's answers, and each of its 4xx."""

from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from orgs.models import AuditEvent
from tests.factories import api_key_for
from usage import services
from usage.models import CreditAccount, GrantSource, Hold, LedgerEntry, UsageEvent

pytestmark = pytest.mark.django_db

C = 1_000_000


def fund(org, credits, source=GrantSource.PURCHASE, **kw):
    return services.credits_grant(org=org, amount_micros=credits * C, source=source, **kw)


def post(api, url, body):
    return api.post(url, body, format="json")


def error(response, status, code):
    assert response.status_code == status, response.content
    body = response.json()["error"]
    assert body["code"] == code, body
    return body


def event(key="e1", **kw):
    return {"idempotency_key": key, "meter": "action.medium", "quantity": 1, **kw}


@pytest.fixture
def read_only(org):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key_for(org, scopes=['read'])[1]}")
    return client


@pytest.fixture
def anonymous():
    return APIClient()


# --- auth and scopes, for every endpoint ----------------------------------------

WRITES = ["/api/v1/usage/events", "/api/v1/usage/events/batch", "/api/v1/holds", "/api/v1/holds/1/capture",
          "/api/v1/holds/1/release", "/api/v1/transfers", "/api/v1/estimates"]
READS = ["/api/v1/balance", "/api/v1/ledger", "/api/v1/usage/summary"]


@pytest.mark.parametrize("url", WRITES + READS)
def test_every_endpoint_needs_a_key(anonymous, url):
    response = anonymous.get(url) if url in READS else post(anonymous, url, {})
    error(response, 401, "authentication_failed")


@pytest.mark.parametrize("url", WRITES)
def test_writes_need_the_usage_write_scope(read_only, url):
    error(post(read_only, url, {}), 403, "permission_denied")


@pytest.mark.parametrize("url", READS)
def test_reads_work_with_the_read_scope(read_only, url):
    assert read_only.get(url).status_code == 200


@pytest.mark.parametrize("url", ["/api/v1/usage/events", "/api/v1/holds", "/api/v1/transfers", "/api/v1/estimates"])
def test_a_malformed_body_is_a_400_envelope(api, url):
    error(api.post(url, data="{nope", content_type="application/json"), 400, "invalid_json")
    body = error(post(api, url, {"unexpected": True} if url != "/api/v1/estimates" else {"workflow": "opera"}), 400, "invalid_request")
    assert body["fields"]


# --- balance --------------------------------------------------------------------


def test_balance_shows_available_held_grants_and_status(api, org):
    fund(org, 1000)
    fund(org, 50, GrantSource.PLAN_ALLOWANCE, expires_at=timezone.now() + timedelta(days=30))
    services.hold_create(org=org, amount_micros=10 * C)

    body = api.get("/api/v1/balance").json()

    assert (body["balance"], body["available"], body["held"], body["status"]) == ("1050", "1040", "10", "ok")
    assert [g["source"] for g in body["grants"]] == ["plan_allowance", "purchase"]
    assert body["grants"][0]["remaining"] == "50"


def test_balance_status_goes_low_then_depleted(api, org):
    fund(org, 20)
    assert api.get("/api/v1/balance").json()["status"] == "low"
    services.credits_debit(org=org, amount_micros=20 * C, idempotency_key="all")
    assert api.get("/api/v1/balance").json()["status"] == "depleted"


# --- single events --------------------------------------------------------------


def test_an_event_is_priced_debited_and_answered_with_decimal_strings(api, org, member):
    fund(org, 100)
    response = post(api, "/api/v1/usage/events", {
        "idempotency_key": "run-1:llm", "meter": "ai.output_tokens", "model": "gpt-5-mini", "quantity": 12400,
        "member": "member@acme.test", "workflow_run_id": "run-1", "metadata": {"step": "draft"},
    })
    assert response.status_code == 201, response.content
    body = response.json()
    # $2.00 per 1M tokens x 1.5 margin / $0.01 per credit = 0.0003 credits per token
    assert (body["credits_per_unit"], body["credits_charged"], body["balance_after"]) == ("0.0003", "3.72", "96.28")
    assert body["billing_mode"] == "platform_key" and body["member"] == "member@acme.test"
    assert CreditAccount.objects.get(org=org).balance_micros == 96_280_000
    assert AuditEvent.objects.filter(org=org, action="usage.recorded", request_id__gt="").exists()


def test_json_numbers_with_fractions_stay_exact(api, org):
    fund(org, 100)
    body = post(api, "/api/v1/usage/events", event(meter="compute.seconds", quantity=0.1)).json()
    assert (body["quantity"], body["credits_charged"]) == ("0.1", "0.0002")


def test_a_replay_answers_the_first_result_and_a_different_body_conflicts(api, org):
    fund(org, 10)
    first = post(api, "/api/v1/usage/events", event())
    again = post(api, "/api/v1/usage/events", event())
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.json() == first.json() and again["Idempotent-Replayed"] == "true"
    assert CreditAccount.objects.get(org=org).balance_micros == 7_500_000
    error(post(api, "/api/v1/usage/events", event(quantity=2)), 409, "idempotency_key_reused")


def test_an_event_the_account_cannot_cover_is_a_402_and_records_nothing(api, org):
    fund(org, 2)
    body = error(post(api, "/api/v1/usage/events", event()), 402, "insufficient_credits")
    assert (body["balance"], body["required"]) == ("2", "2.5") and body["top_up_url"]
    assert not UsageEvent.objects.exists()
    assert LedgerEntry.objects.filter(kind="usage").count() == 0


@pytest.mark.parametrize("body, code", [
    (event(meter="no.such"), "unknown_meter"),
    (event(meter="ai.input_tokens", model="gpt-9000"), "unknown_model"),
    (event(meter="ai.input_tokens"), "unknown_model"),
    (event(member="stranger@example.test"), "unknown_member"),
    (event(quantity=0), "invalid_request"),
    (event(quantity="abc"), "invalid_request"),
    (event(quantity=True), "invalid_request"),
    (event(occurred_at="yesterday"), "invalid_request"),
    ({"meter": "action.small", "quantity": 1}, "invalid_request"),
])
def test_bad_events_are_400s(api, org, body, code):
    fund(org, 10)
    error(post(api, "/api/v1/usage/events", body), 400, code)


def test_another_orgs_provider_key_is_a_404(api, org, other_org):
    fund(org, 10)
    theirs = services.provider_key_create(org=other_org, provider="openai", label="theirs", last_four="abcd")
    error(post(api, "/api/v1/usage/events", event(provider_key_id=theirs.pk)), 404, "provider_key_not_found")


def test_a_members_monthly_cap_is_a_402_spend_limit_reached(api, org, owner, member):
    fund(org, 100)
    services.member_limit_set(org=org, member=member, monthly_limit_micros=3 * C, actor=owner)
    assert post(api, "/api/v1/usage/events", event("a", member=member.email)).status_code == 201
    body = error(post(api, "/api/v1/usage/events", event("b", member=member.email)), 402, "spend_limit_reached")
    assert (body["limit"], body["spent"], body["required"]) == ("3", "2.5", "2.5")
    # the org's own usage (no member) is not capped
    assert post(api, "/api/v1/usage/events", event("c")).status_code == 201


# --- batches --------------------------------------------------------------------


def test_a_batch_answers_each_event_on_its_own(api, org):
    fund(org, 5)
    events = [event("a"), event("a"), event("b", meter="nope"), event("c"), event("d"), {"meter": 5}]
    body = post(api, "/api/v1/usage/events/batch", {"events": events}).json()
    statuses = [(r["status"], r["error"]["code"] if r["error"] else None) for r in body["results"]]
    assert statuses == [
        ("recorded", None), ("replayed", None), ("refused", "unknown_meter"), ("recorded", None),
        ("refused", "insufficient_credits"), ("refused", "invalid_request"),
    ]
    assert body["results"][4]["error"]["status"] == 402
    assert (body["recorded"], body["replayed"], body["refused"]) == (2, 1, 3)
    assert CreditAccount.objects.get(org=org).balance_micros == 0

    again = post(api, "/api/v1/usage/events/batch", {"events": [event("a"), event("c", quantity=2)]}).json()
    assert [r["status"] for r in again["results"]] == ["replayed", "refused"]
    assert again["results"][0]["event"] == body["results"][0]["event"]
    assert again["results"][1]["error"]["status"] == 409


@pytest.mark.parametrize("body", [{}, {"events": []}, {"events": "x"}, {"events": [event(str(i)) for i in range(1001)]}])
def test_a_batch_must_hold_1_to_1000_events(api, body):
    error(post(api, "/api/v1/usage/events/batch", body), 400, "invalid_request")


# --- holds ----------------------------------------------------------------------


def test_hold_capture_with_events_and_release(api, org):
    fund(org, 100)
    hold = post(api, "/api/v1/holds", {"idempotency_key": "run-1", "credits": "50", "expires_in": 600})
    assert hold.status_code == 201 and hold.json()["status"] == "open"
    hold_id = hold.json()["id"]
    assert api.get("/api/v1/balance").json()["available"] == "50"

    captured = post(api, f"/api/v1/holds/{hold_id}/capture", {"events": [
        event("run-1:a", meter="action.large"), event("run-1:b", meter="compute.seconds", quantity="30")]})

    assert captured.status_code == 200, captured.content
    body = captured.json()
    assert body["hold"]["status"] == "captured" and body["hold"]["captured"] == "5.06"
    assert [e["credits_charged"] for e in body["events"]] == ["5", "0.06"]
    assert body["balance_after"] == "94.94"
    again = post(api, f"/api/v1/holds/{hold_id}/capture", {"events": [
        event("run-1:a", meter="action.large"), event("run-1:b", meter="compute.seconds", quantity="30")]})
    assert again.status_code == 200 and again.json()["hold"] == body["hold"]
    error(post(api, f"/api/v1/holds/{hold_id}/capture", {"credits": "1"}), 409, "hold_already_captured")
    error(post(api, f"/api/v1/holds/{hold_id}/release", {}), 409, "hold_already_captured")

    other = post(api, "/api/v1/holds", {"idempotency_key": "run-2", "credits": "10"}).json()
    released = post(api, f"/api/v1/holds/{other['id']}/release", {})
    assert released.status_code == 200 and released.json()["status"] == "released"
    error(post(api, f"/api/v1/holds/{other['id']}/capture", {"credits": "1"}), 409, "hold_released")


def test_hold_errors(api, org, other_org):
    fund(org, 10)
    error(post(api, "/api/v1/holds", {"idempotency_key": "h", "credits": "11"}), 402, "insufficient_credits")
    error(post(api, "/api/v1/holds", {"idempotency_key": "h", "credits": "0"}), 400, "invalid_request")
    error(post(api, "/api/v1/holds", {"idempotency_key": "h", "credits": "1.0000001"}), 400, "invalid_request")
    error(post(api, "/api/v1/holds", {"idempotency_key": "h", "credits": "1", "expires_in": 0}), 400, "invalid_request")
    assert post(api, "/api/v1/holds", {"idempotency_key": "h", "credits": "1"}).status_code == 201
    error(post(api, "/api/v1/holds", {"idempotency_key": "h", "credits": "2"}), 409, "idempotency_key_reused")
    theirs = services.hold_create(org=other_org, amount_micros=1, idempotency_key="x") if fund(other_org, 1) else None
    error(post(api, f"/api/v1/holds/{theirs.pk}/capture", {"credits": "1"}), 404, "hold_not_found")
    error(post(api, f"/api/v1/holds/{theirs.pk}/release", {}), 404, "hold_not_found")
    error(post(api, "/api/v1/holds/999999/capture", {"credits": "-1"}), 400, "invalid_request")
    # An empty body captures what was recorded against the hold: valid, so an unknown hold is 404.
    error(post(api, "/api/v1/holds/999999/capture", {}), 404, "hold_not_found")
    assert Hold.objects.get(pk=theirs.pk).status == "open"


# --- estimates ------------------------------------------------------------------


def test_an_estimate_of_a_workflow_is_a_credit_and_money_range(api, org):
    body = post(api, "/api/v1/estimates", {"workflow": "tweet"}).json()
    # 1 small action + 800..2000 input tokens x 0.0000375 + 100..400 output x 0.0003 + 2..6 s x 0.002
    assert body["credits"] == {"low": "1.064", "high": "1.207"}
    assert body["money"] == {"currency": "usd", "low": "0.01", "high": "0.01"}


def test_an_estimate_of_quantities_and_with_the_orgs_own_key(api, org):
    items = [{"meter": "video.seconds", "model": "sora-2", "low": 8, "high": 20}, {"meter": "action.xl", "quantity": 1}]
    body = post(api, "/api/v1/estimates", {"items": items}).json()
    assert body["credits"] == {"low": "135", "high": "315"} and body["money"]["high"] == "3.15"
    own = post(api, "/api/v1/estimates", {"items": items, "billing_mode": "own_key"}).json()
    assert own["credits"] == {"low": "15", "high": "15"}
    error(post(api, "/api/v1/estimates", {"items": [{"meter": "nope", "quantity": 1}]}), 400, "unknown_meter")
    error(post(api, "/api/v1/estimates", {"items": []}), 400, "invalid_request")


# --- ledger and summary -----------------------------------------------------------


def test_the_ledger_is_cursor_paginated_and_filtered(api, org):
    fund(org, 100)
    for i in range(5):
        services.credits_debit(org=org, amount_micros=C, idempotency_key=f"u{i}")
    page = api.get("/api/v1/ledger?page_size=2").json()
    assert [e["amount"] for e in page["results"]] == ["-1", "-1"] and page["next"]
    seen = [e["id"] for e in page["results"]]
    while page["next"]:
        page = api.get(page["next"]).json()
        seen += [e["id"] for e in page["results"]]
    assert len(seen) == 6 == len(set(seen))
    grants = api.get("/api/v1/ledger?kind=grant").json()["results"]
    assert [e["amount"] for e in grants] == ["100"]
    error(api.get("/api/v1/ledger?kind=bogus"), 400, "invalid_request")
    error(api.get("/api/v1/ledger?since=never"), 400, "invalid_request")
    future = (timezone.now() + timedelta(days=1)).isoformat().replace("+00:00", "Z")
    assert api.get("/api/v1/ledger", {"since": future}).json()["results"] == []


def test_the_usage_summary_groups_by_meter_member_and_run(api, org, member):
    fund(org, 100)
    post(api, "/api/v1/usage/events/batch", {"events": [
        event("a", workflow_run_id="r1", member=member.email), event("b", workflow_run_id="r1"),
        event("c", meter="action.small", workflow_run_id="r2"),
    ]})
    by_meter = api.get("/api/v1/usage/summary?group_by=meter").json()["rows"]
    assert {(r["key"], r["quantity"], r["credits"], r["events"]) for r in by_meter} == {
        ("action.medium", "2", "5", 2), ("action.small", "1", "1", 1)}
    by_run = api.get("/api/v1/usage/summary?group_by=workflow_run&period=month").json()["rows"]
    assert {(r["key"], r["credits"]) for r in by_run} == {("r1", "5"), ("r2", "1")}
    by_member = api.get("/api/v1/usage/summary?group_by=member").json()["rows"]
    assert {(r["key"], r["meter"], r["credits"]) for r in by_member} == {
        (member.email, "action.medium", "2.5"), (None, "action.medium", "2.5"), (None, "action.small", "1")}
    error(api.get("/api/v1/usage/summary?period=year"), 400, "invalid_request")
    error(api.get("/api/v1/usage/summary?group_by=colour"), 400, "invalid_request")
    error(api.get("/api/v1/usage/summary?since=2026-01-02T00:00:00Z&until=2026-01-01T00:00:00Z"), 400, "invalid_request")


# --- transfers --------------------------------------------------------------------


def test_a_transfer_sends_purchased_credits_once(api, org, other_org):
    fund(org, 20)
    fund(org, 50, GrantSource.PROMO)
    body = {"idempotency_key": "coffee", "to_org": "globex", "credits": "5", "note": "Thanks"}
    first = post(api, "/api/v1/transfers", body)
    again = post(api, "/api/v1/transfers", body)
    assert (first.status_code, again.status_code) == (201, 201) and first.json() == again.json()
    assert CreditAccount.objects.get(org=other_org).balance_micros == 5 * C
    error(post(api, "/api/v1/transfers", {**body, "credits": "6"}), 409, "idempotency_key_reused")
    error(post(api, "/api/v1/transfers", {**body, "idempotency_key": "k2", "credits": "16"}), 402, "insufficient_credits")
    error(post(api, "/api/v1/transfers", {**body, "idempotency_key": "k3", "to_org": "nobody"}), 404, "org_not_found")
    error(post(api, "/api/v1/transfers", {**body, "idempotency_key": "k4", "to_org": "acme"}), 400, "transfer_to_self")
    error(post(api, "/api/v1/transfers", {**body, "idempotency_key": "k5", "credits": "-1"}), 400, "invalid_request")


def test_the_schema_documents_every_usage_endpoint(client):
    schema = client.get("/api/schema/").content.decode()
    for path in ["/api/v1/balance", "/api/v1/usage/events/batch", "/api/v1/holds/{hold_id}/capture",
                 "/api/v1/estimates", "/api/v1/ledger", "/api/v1/usage/summary", "/api/v1/transfers"]:
        assert path in schema


# --- provider keys -------------------------------------------------------------------


@pytest.fixture
def billing_api(org):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key_for(org, scopes=['read', 'billing:write'])[1]}")
    return client


def test_provider_keys_are_registered_listed_and_revoked(billing_api, api, org, other_org):
    created = post(billing_api, "/api/v1/provider-keys", {"provider": "openai", "label": "prod", "last_four": "x9Qz"})
    assert created.status_code == 201 and created.json()["last_four"] == "x9Qz"
    key_id = created.json()["id"]
    assert [k["id"] for k in billing_api.get("/api/v1/provider-keys").json()] == [key_id]
    error(post(api, "/api/v1/provider-keys", {"provider": "openai", "label": "x", "last_four": "abcd"}), 403, "permission_denied")
    error(post(billing_api, "/api/v1/provider-keys", {"provider": "openai", "label": "x", "last_four": "sk-abcdef"}), 400,
          "invalid_request")
    error(post(billing_api, "/api/v1/provider-keys", {"provider": "acme", "label": "x", "last_four": "abcd"}), 400,
          "invalid_request")
    theirs = services.provider_key_create(org=other_org, provider="openai", label="t", last_four="wxyz")
    error(post(billing_api, f"/api/v1/provider-keys/{theirs.pk}/revoke", {}), 404, "provider_key_not_found")
    revoked = post(billing_api, f"/api/v1/provider-keys/{key_id}/revoke", {})
    assert revoked.status_code == 200 and revoked.json()["revoked_at"]
    assert billing_api.get("/api/v1/provider-keys").json() == []


@pytest.mark.parametrize("url, body", [
    ("/api/v1/usage/events", event(workflow_run_id="run\u0000one")),
    ("/api/v1/usage/events", event(metadata={"step": "a\u0000b"})),
    ("/api/v1/usage/events/batch", {"events": [event("ok"), event("nul\u0000key")]}),
    ("/api/v1/holds", {"idempotency_key": "h", "credits": "1", "metadata": {"k\u0000": 1}}),
])
def test_a_nul_character_anywhere_is_a_400_and_records_nothing(api, org, url, body):
    fund(org, 10)
    error(post(api, url, body), 400, "invalid_json")
    assert not UsageEvent.objects.exists() and not Hold.objects.exists()


@pytest.mark.parametrize("credits", ["1e999999", "1e99999", "-1e999999", "1000000000001"])
def test_amounts_beyond_the_largest_are_400s_not_500s(api, org, credits):
    fund(org, 10)
    error(post(api, "/api/v1/holds", {"idempotency_key": "h", "credits": credits}), 400, "invalid_request")
    hold = post(api, "/api/v1/holds", {"idempotency_key": "h2", "credits": "1"}).json()
    error(post(api, f"/api/v1/holds/{hold['id']}/capture", {"credits": credits}), 400, "invalid_request")


def test_hold_metadata_keeps_exact_numbers_and_is_capped(api, org):
    fund(org, 10)
    hold = post(api, "/api/v1/holds", {"idempotency_key": "h", "credits": "1", "metadata": {"ratio": 1.5, "n": 2}})
    assert hold.status_code == 201, hold.content
    assert Hold.objects.get().metadata == {"ratio": "1.5", "n": 2}
    big = {"idempotency_key": "h2", "credits": "1", "metadata": {"blob": "x" * 5000}}
    error(post(api, "/api/v1/holds", big), 400, "invalid_request")


def test_the_usage_summary_never_adds_quantities_of_different_meters(api, org):
    fund(org, 100)
    post(api, "/api/v1/usage/events/batch", {"events": [
        event("tokens", meter="ai.output_tokens", model="gpt-5-mini", quantity=1000, workflow_run_id="r1"),
        event("seconds", meter="compute.seconds", quantity=30, workflow_run_id="r1"),
    ]})
    rows = api.get("/api/v1/usage/summary?group_by=workflow_run").json()["rows"]
    assert {(r["key"], r["meter"], r["quantity"], r["credits"]) for r in rows} == {
        ("r1", "ai.output_tokens", "1000", "0.3"), ("r1", "compute.seconds", "30", "0.06")}


def test_a_cursor_the_api_did_not_give_is_a_400(api, org):
    error(api.get("/api/v1/ledger?cursor=%F1%B4%9A%B1"), 400, "invalid_request")
