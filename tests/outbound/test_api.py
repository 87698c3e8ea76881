"""/api/v1/webhook-endpoints and /api/v1/events."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from outbound import services
from outbound.models import WebhookEndpoint
from tests.factories import api_key_for

URL = "/api/v1/webhook-endpoints"


def client_for(org, scopes):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key_for(org, scopes=scopes)[1]}")
    return client


@pytest.fixture
def writer(org):
    return client_for(org, ["read", "billing:write"])


@pytest.fixture
def reader(org):
    return client_for(org, ["read"])


def test_it_creates_an_endpoint_and_shows_the_secret_only_then(writer, receiver):
    created = writer.post(URL, {"url": receiver.url, "events": ["balance.low", "balance.replenished"],
                                "description": "resume"}, format="json")
    assert created.status_code == 201, created.json()
    body = created.json()
    assert body["secret"].startswith("whsec_") and body["events"] == ["balance.low", "balance.replenished"]
    listed = writer.get(URL).json()["data"]
    assert [e["id"] for e in listed] == [body["id"]] and "secret" not in listed[0]
    shown = writer.get(f"{URL}/{body['id']}").json()
    assert "secret" not in shown and shown["recent_deliveries"] == []


def test_read_scope_lists_but_cannot_change(reader, org, receiver):
    assert reader.get(URL).status_code == 200
    refused = reader.post(URL, {"url": receiver.url, "events": ["*"]}, format="json")
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "permission_denied"


@pytest.mark.parametrize("body, code", [
    ({"url": "ftp://x.example/hook", "events": ["*"]}, "invalid_url"),
    ({"url": "https://x.example/hook", "events": ["balance.sideways"]}, "invalid_events"),
    ({"url": "https://x.example/hook", "events": []}, "invalid_request"),
    ({"events": ["*"]}, "invalid_request"),
])
def test_bad_input_is_a_400_in_the_envelope(writer, body, code):
    answer = writer.post(URL, body, format="json")
    assert answer.status_code == 400 and answer.json()["error"]["code"] == code


def test_another_orgs_endpoint_is_a_404(writer, other_org, receiver):
    theirs = services.endpoint_create(org=other_org, url=receiver.url, events=["*"])
    for answer in (writer.get(f"{URL}/{theirs.pk}"), writer.delete(f"{URL}/{theirs.pk}"),
                   writer.post(f"{URL}/{theirs.pk}/rotate-secret")):
        assert answer.status_code == 404 and answer.json()["error"]["code"] == "not_found"
    assert WebhookEndpoint.objects.filter(pk=theirs.pk).exists()


def test_rotate_and_delete(writer, org, receiver):
    endpoint = services.endpoint_create(org=org, url=receiver.url, events=["*"])
    rotated = writer.post(f"{URL}/{endpoint.pk}/rotate-secret").json()
    assert rotated["secret"] != endpoint.secret and rotated["previous_secret_expires_at"]
    assert writer.delete(f"{URL}/{endpoint.pk}").status_code == 204
    assert not WebhookEndpoint.objects.filter(pk=endpoint.pk).exists()


def test_the_detail_shows_recent_deliveries_and_events_are_listed(writer, org, receiver,
                                                                 django_capture_on_commit_callbacks):
    endpoint = services.endpoint_create(org=org, url=receiver.url, events=["*"])
    with django_capture_on_commit_callbacks(execute=True):
        services.event_send(org_id=org.pk, type="invoice.paid", data={"invoice": "in_1"}, key="in_1")
    shown = writer.get(f"{URL}/{endpoint.pk}").json()
    [delivery] = shown["recent_deliveries"]
    assert delivery["state"] == "succeeded" and delivery["attempt_log"][0]["status_code"] == 200
    events = writer.get("/api/v1/events").json()
    assert [e["type"] for e in events["results"]] == ["invoice.paid"]
    assert writer.get("/api/v1/events", {"cursor": "nonsense"}).status_code == 400
