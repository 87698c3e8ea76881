"""Spending tokens: issued for a hold, listed without secrets, revoked; a token is
refused by every call but recording usage, and refused outright once it is dead."""

from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.models import OrgAPIKey
from accounts.services import api_key_revoke
from orgs.models import AuditEvent
from tests.factories import api_key_for
from usage import services
from usage.models import GrantSource, SpendingToken

pytestmark = pytest.mark.django_db

C = 1_000_000


def error(response, status, code):
    assert response.status_code == status, response.content
    body = response.json()["error"]
    assert body["code"] == code, body
    return body


def bearer(secret):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return client


@pytest.fixture
def hold(org):
    services.credits_grant(org=org, amount_micros=100 * C, source=GrantSource.PURCHASE)
    return services.hold_create(org=org, amount_micros=20 * C, idempotency_key="run-1",
                                expires_in=timedelta(hours=1))


def issue(api, hold, **body):
    response = api.post(f"/api/v1/holds/{hold.pk}/tokens", body, format="json")
    assert response.status_code == 201, response.content
    return response.json()


# --- issuing -------------------------------------------------------------------------


def test_it_issues_a_token_shown_once_and_stores_only_its_hash(api, hold):
    body = issue(api, hold, credits="5", meters=["ai.output_tokens"], expires_in=600, name="search tool")

    secret = body["token"]
    assert secret.startswith("tgs_") and secret.startswith(body["prefix"] + ".")
    assert body["credits"] == "5" and body["spent"] == "0" and body["remaining"] == "5"
    assert body["meters"] == ["ai.output_tokens"] and body["status"] == "active" and body["hold_id"] == hold.pk
    row = SpendingToken.objects.get(pk=body["id"])
    assert secret not in row.hashed_key and row.hashed_key.startswith("sha512$$")
    assert row.expires_at - row.created_at == timedelta(seconds=600)
    assert AuditEvent.objects.filter(action="spending_token.created", data__prefix=row.prefix).exists()


def test_its_ceiling_defaults_to_the_hold_and_it_never_outlives_the_hold(api, hold):
    body = issue(api, hold, expires_in=86400)

    assert body["credits"] == "20" and body["meters"] == []
    assert SpendingToken.objects.get(pk=body["id"]).expires_at == hold.expires_at


def test_it_refuses_bad_input(api, hold):
    url = f"/api/v1/holds/{hold.pk}/tokens"
    error(api.post(url, {"credits": "0"}, format="json"), 400, "invalid_request")
    error(api.post(url, {"expires_in": 86401}, format="json"), 400, "invalid_request")
    error(api.post(url, {"meters": ["no.such.meter"]}, format="json"), 400, "unknown_meter")


def test_it_keeps_a_token_within_its_key_meters(org, hold):
    key, secret = api_key_for(org)
    OrgAPIKey.objects.filter(pk=key.pk).update(meters=["action.small"])

    body = error(bearer(secret).post(f"/api/v1/holds/{hold.pk}/tokens", {"meters": ["action.medium"]}, format="json"),
                 403, "meter_not_allowed")
    assert body["allowed_meters"] == ["action.small"]


def test_another_orgs_hold_is_404_and_a_closed_hold_is_409(api, org, other_org, hold):
    services.credits_grant(org=other_org, amount_micros=10 * C, source=GrantSource.PURCHASE)
    theirs = services.hold_create(org=other_org, amount_micros=C)
    error(api.post(f"/api/v1/holds/{theirs.pk}/tokens", {}, format="json"), 404, "hold_not_found")
    error(api.get(f"/api/v1/holds/{theirs.pk}/tokens"), 404, "hold_not_found")

    services.hold_release(org=org, hold_id=hold.pk)
    error(api.post(f"/api/v1/holds/{hold.pk}/tokens", {}, format="json"), 409, "hold_closed")


def test_issuing_needs_the_usage_write_scope(org, hold):
    _key, secret = api_key_for(org, scopes=["read"])
    error(bearer(secret).post(f"/api/v1/holds/{hold.pk}/tokens", {}, format="json"), 403, "permission_denied")


# --- listing and revoking -------------------------------------------------------------


def test_it_lists_a_holds_tokens_without_secrets(api, hold):
    first = issue(api, hold, name="one")
    second = issue(api, hold, name="two")

    listed = api.get(f"/api/v1/holds/{hold.pk}/tokens").json()

    assert [t["id"] for t in listed] == [second["id"], first["id"]]
    assert all("token" not in t and "hashed_key" not in t for t in listed)
    assert listed[0]["api_key_prefix"]


def test_revoking_stops_a_token_at_once_and_is_harmless_twice(api, hold):
    body = issue(api, hold)
    url = f"/api/v1/holds/{hold.pk}/tokens/{body['id']}"

    revoked = api.delete(url)
    again = api.delete(url)

    assert revoked.status_code == again.status_code == 200
    assert revoked.json()["status"] == "revoked" and again.json()["revoked_at"] == revoked.json()["revoked_at"]
    assert AuditEvent.objects.filter(action="spending_token.revoked").count() == 1
    error(bearer(body["token"]).post("/api/v1/usage/events", {}, format="json"), 401, "token_revoked")


def test_another_orgs_token_cannot_be_revoked(api, other_org, hold):
    _key, theirs = api_key_for(other_org)
    error(bearer(theirs).delete(f"/api/v1/holds/{hold.pk}/tokens/1"), 404, "hold_not_found")
    body = issue(api, hold)
    error(api.delete(f"/api/v1/holds/{hold.pk}/tokens/{body['id'] + 1}"), 404, "token_not_found")


# --- what a token may not do ----------------------------------------------------------


@pytest.mark.parametrize("method,url", [
    ("get", "/api/v1/balance"), ("get", "/api/v1/ledger"), ("get", "/api/v1/usage/summary"),
    ("post", "/api/v1/holds"), ("post", "/api/v1/holds/{hold}/capture"), ("post", "/api/v1/holds/{hold}/release"),
    ("post", "/api/v1/holds/{hold}/tokens"), ("get", "/api/v1/holds/{hold}/tokens"), ("post", "/api/v1/transfers"),
    ("post", "/api/v1/estimates"), ("get", "/api/v1/org"), ("get", "/api/v1/plans"), ("post", "/api/v1/checkout"),
    ("get", "/api/v1/webhook-endpoints"), ("get", "/api/v1/events"),
])
def test_any_other_call_with_a_token_is_403_token_not_allowed(api, hold, method, url):
    token = bearer(issue(api, hold)["token"])

    response = getattr(token, method)(url.format(hold=hold.pk), {}, format="json")

    body = error(response, 403, "token_not_allowed")
    assert body["token_prefix"].startswith("tgs_")
    assert hold.__class__.objects.get(pk=hold.pk).status == "open"


def test_an_unknown_or_forged_token_is_401(api, hold):
    secret = issue(api, hold)["token"]
    prefix = secret.partition(".")[0]

    error(bearer(prefix + ".forged").post("/api/v1/usage/events", {}, format="json"), 401, "authentication_failed")
    response = bearer("tgs_nothing").get("/api/v1/balance")
    error(response, 401, "authentication_failed")
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_an_expired_token_is_401_token_expired(api, hold):
    secret = issue(api, hold, expires_in=60)["token"]

    with time_machine.travel(timezone.now() + timedelta(seconds=61)):
        error(bearer(secret).post("/api/v1/usage/events", {}, format="json"), 401, "token_expired")


def test_a_token_whose_key_was_revoked_is_401_token_revoked(org, hold):
    key, key_secret = api_key_for(org)
    secret = issue(bearer(key_secret), hold)["token"]

    api_key_revoke(org=org, key=key)

    error(bearer(secret).post("/api/v1/usage/events", {}, format="json"), 401, "token_revoked")


def test_a_token_never_outlives_the_key_that_issued_it(org, hold):
    key, key_secret = api_key_for(org)
    soon = timezone.now() + timedelta(minutes=5)
    OrgAPIKey.objects.filter(pk=key.pk).update(expiry_date=soon)
    secret = issue(bearer(key_secret), hold, expires_in=3600)["token"]
    assert SpendingToken.objects.get(prefix=secret.partition(".")[0]).expires_at == soon

    # A key whose expiry was brought forward after the token was issued stops it too.
    OrgAPIKey.objects.filter(pk=key.pk).update(expiry_date=timezone.now() - timedelta(seconds=1))
    body = error(bearer(secret).post("/api/v1/usage/events", {}, format="json"), 401, "token_expired")
    assert "API key" in body["message"]


@pytest.mark.parametrize("end", ["release", "capture"])
def test_a_token_whose_hold_ended_is_403_token_hold_closed(api, org, hold, end):
    secret = issue(api, hold)["token"]
    if end == "release":
        services.hold_release(org=org, hold_id=hold.pk)
    else:
        services.hold_capture(org=org, hold_id=hold.pk, amount_micros=C)

    body = error(bearer(secret).post("/api/v1/usage/events", {}, format="json"), 403, "token_hold_closed")
    assert body["hold_id"] == hold.pk and body["hold_status"] == ("released" if end == "release" else "captured")
    listed = api.get(f"/api/v1/holds/{hold.pk}/tokens").json()
    assert listed[0]["status"] == "hold_closed"
