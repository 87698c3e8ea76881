"""Recording usage with a spending token: onto its hold, within its meters and
ceiling, as the key that issued it; each event keeps which token made it."""

from datetime import timedelta

import pytest
from rest_framework.test import APIClient

from accounts.authentication import APIKeyRateThrottle
from accounts.models import OrgAPIKey
from orgs.models import AuditEvent
from tests.factories import api_key_for
from usage import services
from usage.models import GrantSource, Hold, SpendingToken, UsageEvent

pytestmark = pytest.mark.django_db

C = 1_000_000
MEDIUM = 2_500_000  # action.medium on the default card


def error(response, status, code):
    assert response.status_code == status, response.content
    body = response.json()["error"]
    assert body["code"] == code, body
    return body


def bearer(secret):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return client


def event(key, **kw):
    return {"idempotency_key": key, "meter": "action.medium", "quantity": 1, **kw}


@pytest.fixture
def hold(org):
    services.credits_grant(org=org, amount_micros=100 * C, source=GrantSource.PURCHASE)
    return services.hold_create(org=org, amount_micros=20 * C, idempotency_key="run-1",
                                expires_in=timedelta(hours=1))


def issue(api, hold, **body):
    response = api.post(f"/api/v1/holds/{hold.pk}/tokens", body, format="json")
    assert response.status_code == 201, response.content
    return response.json()


def test_a_tokens_event_is_recorded_against_its_hold_and_names_the_token(api, hold):
    issued = issue(api, hold, credits="10")
    tool = bearer(issued["token"])

    response = tool.post("/api/v1/usage/events", event("e1"), format="json")

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["hold_id"] == hold.pk and body["spending_token_id"] == issued["id"]
    recorded = UsageEvent.objects.get(pk=body["id"])
    assert recorded.spending_token_id == issued["id"] and recorded.hold_id == hold.pk
    token = SpendingToken.objects.get(pk=issued["id"])
    assert token.spent_micros == MEDIUM
    assert Hold.objects.get(pk=hold.pk).used_micros == MEDIUM
    # recorded as the issuing key
    assert recorded.api_key_prefix == token.api_key.prefix
    listed = api.get(f"/api/v1/holds/{hold.pk}/tokens").json()[0]
    assert listed["spent"] == "2.5" and listed["remaining"] == "7.5"
    audit = AuditEvent.objects.get(action="usage.recorded")
    assert audit.data["spending_token"] == token.prefix and audit.actor_api_key == token.api_key.prefix


def test_a_replay_with_a_token_answers_the_first_event_and_spends_nothing_more(api, hold):
    tool = bearer(issue(api, hold)["token"])
    first = tool.post("/api/v1/usage/events", event("e1"), format="json")
    again = tool.post("/api/v1/usage/events", event("e1"), format="json")

    assert again.status_code == 201 and again["Idempotent-Replayed"] == "true"
    assert again.json()["id"] == first.json()["id"]
    assert SpendingToken.objects.get().spent_micros == MEDIUM


def test_an_event_naming_another_hold_is_403_token_not_allowed(api, org, hold):
    other = services.hold_create(org=org, amount_micros=5 * C)
    tool = bearer(issue(api, hold)["token"])

    error(tool.post("/api/v1/usage/events", event("e1", hold_id=other.pk), format="json"), 403, "token_not_allowed")
    ok = tool.post("/api/v1/usage/events", event("e2", hold_id=hold.pk), format="json")

    assert ok.status_code == 201, ok.content
    assert not UsageEvent.objects.filter(hold=other).exists()


def test_a_meter_outside_the_tokens_list_is_403_meter_not_allowed(api, hold):
    tool = bearer(issue(api, hold, meters=["action.small"])["token"])

    body = error(tool.post("/api/v1/usage/events", event("e1"), format="json"), 403, "meter_not_allowed")

    assert body["allowed_meters"] == ["action.small"] and body["token_prefix"].startswith("tgs_")
    assert tool.post("/api/v1/usage/events", event("e2", meter="action.small"), format="json").status_code == 201


def test_past_its_ceiling_a_token_is_402_and_records_nothing(api, hold):
    tool = bearer(issue(api, hold, credits="5")["token"])
    assert tool.post("/api/v1/usage/events", event("e1"), format="json").status_code == 201
    assert tool.post("/api/v1/usage/events", event("e2"), format="json").status_code == 201

    body = error(tool.post("/api/v1/usage/events", event("e3"), format="json"), 402, "token_ceiling_reached")

    assert body["ceiling"] == "5" and body["spent"] == "5" and body["required"] == "2.5"
    assert UsageEvent.objects.filter(spending_token__isnull=False).count() == 2


def test_a_batch_with_a_token_refuses_only_the_events_past_its_rules(api, org, hold):
    other = services.hold_create(org=org, amount_micros=5 * C)
    tool = bearer(issue(api, hold, credits="5", meters=["action.medium"])["token"])

    response = tool.post("/api/v1/usage/events/batch", {"events": [
        event("b1"), event("b2", meter="action.small"), event("b3", hold_id=other.pk), event("b4"), event("b5"),
    ]}, format="json")

    assert response.status_code == 200, response.content
    results = response.json()["results"]
    assert [r["status"] for r in results] == ["recorded", "refused", "refused", "recorded", "refused"]
    assert [r["error"]["code"] for r in results if r["error"]] == [
        "meter_not_allowed", "token_not_allowed", "token_ceiling_reached"]
    assert {r["event"]["spending_token_id"] for r in results if r["event"]} == {SpendingToken.objects.get().pk}
    assert SpendingToken.objects.get().spent_micros == 2 * MEDIUM


def test_the_issuing_keys_own_limit_still_applies(org, hold):
    key, secret = api_key_for(org)
    OrgAPIKey.objects.filter(pk=key.pk).update(monthly_limit_micros=3 * C)
    tool = bearer(issue(bearer(secret), hold, credits="10")["token"])

    assert tool.post("/api/v1/usage/events", event("e1"), format="json").status_code == 201
    error(tool.post("/api/v1/usage/events", event("e2"), format="json"), 402, "key_limit_reached")


def test_a_revoked_token_records_nothing_more(api, hold):
    issued = issue(api, hold)
    tool = bearer(issued["token"])
    assert tool.post("/api/v1/usage/events", event("e1"), format="json").status_code == 201

    api.delete(f"/api/v1/holds/{hold.pk}/tokens/{issued['id']}")

    error(tool.post("/api/v1/usage/events", event("e2"), format="json"), 401, "token_revoked")
    error(tool.post("/api/v1/usage/events/batch", {"events": [event("e3")]}, format="json"), 401, "token_revoked")
    assert UsageEvent.objects.filter(spending_token_id=issued["id"]).count() == 1


def test_a_tokens_calls_count_against_its_keys_rate_limit(api, hold, monkeypatch):
    tool = bearer(issue(api, hold)["token"])  # one call of the key's
    monkeypatch.setattr(APIKeyRateThrottle, "THROTTLE_RATES", {"api_key": "3/min"})

    assert api.get("/api/v1/balance").status_code == 200
    assert tool.post("/api/v1/usage/events", event("e1"), format="json").status_code == 201

    error(tool.post("/api/v1/usage/events", event("e2"), format="json"), 429, "rate_limited")
    error(api.get("/api/v1/balance"), 429, "rate_limited")


def test_a_token_records_on_its_holds_children_but_a_childs_token_not_on_its_parent(api, org, hold):
    child = services.hold_create(org=org, amount_micros=5 * C, parent_hold_id=hold.pk)
    grandchild = services.hold_create(org=org, amount_micros=2 * C, parent_hold_id=child.pk)
    tool = bearer(issue(api, hold)["token"])

    on_child = tool.post("/api/v1/usage/events", event("e1", hold_id=child.pk), format="json")
    on_grandchild = tool.post("/api/v1/usage/events", event("e2", hold_id=grandchild.pk), format="json")

    assert on_child.status_code == on_grandchild.status_code == 201, (on_child.content, on_grandchild.content)
    assert on_child.json()["hold_id"] == child.pk and on_grandchild.json()["hold_id"] == grandchild.pk
    assert SpendingToken.objects.get(hold=hold).spent_micros == 2 * MEDIUM
    childs = bearer(issue(api, child)["token"])
    error(childs.post("/api/v1/usage/events", event("e3", hold_id=hold.pk), format="json"), 403, "token_not_allowed")
