"""Bad input is a 4xx in the error envelope, never a 500 and never HTML: impossible
dates, JSON nested past any sane depth, oversized bodies, and the refusals
Django makes before a view runs."""

import json

import pytest
from django.core.exceptions import RequestDataTooBig
from django.test import Client, RequestFactory, override_settings
from django.urls import path
from rest_framework.test import APIClient

from usage import services
from usage.models import GrantSource, UsageEvent
from billing_project import api as api_errors
from tests.factories import api_key_for
from usage.services import rates

pytestmark = pytest.mark.django_db

C = 1_000_000
IMPOSSIBLE = ["2026-01-01T00:60:00Z", "2026-02-30T10:00:00Z", "2026-01-01T25:00:00Z", "2026-01-01T10:00:00+25:00"]
BODY_ENDPOINTS = ["/api/v1/usage/events", "/api/v1/usage/events/batch", "/api/v1/holds", "/api/v1/estimates",
                  "/api/v1/transfers", "/api/v1/checkout", "/api/v1/portal", "/api/v1/provider-keys"]


@pytest.fixture(autouse=True)
def rate_card(db):
    rates.clear_cache()
    rates.load_card_data(rates.read_data_file())
    yield
    rates.clear_cache()


@pytest.fixture
def api(org):
    """A key with every scope: each endpoint gets as far as reading its body."""
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key_for(org, scopes=['read', 'usage:write', 'billing:write'])[1]}")
    return client


@pytest.fixture
def funded(org):
    services.credits_grant(org=org, amount_micros=100 * C, source=GrantSource.PURCHASE)
    return org


def envelope(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content[:300]
    assert response["Content-Type"].startswith("application/json"), response["Content-Type"]
    error = json.loads(response.content)["error"]
    assert error["code"] == code, error
    assert error["message"] and error["type"]
    return error


def event(key="e1", **kw):
    return {"idempotency_key": key, "meter": "action.medium", "quantity": 1, **kw}


# --- impossible dates ----------------------------------------------------------------


@pytest.mark.parametrize("when", IMPOSSIBLE)
def test_an_impossible_occurred_at_is_a_400_naming_the_field(api, funded, when):
    error = envelope(api.post("/api/v1/usage/events", event(occurred_at=when), format="json"), 400, "invalid_request")
    assert "occurred_at" in error["fields"]
    assert not UsageEvent.objects.exists()


@pytest.mark.parametrize("when", IMPOSSIBLE)
def test_an_impossible_occurred_at_refuses_only_its_event_in_a_batch(api, funded, when):
    response = api.post("/api/v1/usage/events/batch", {"events": [event("ok"), event("bad", occurred_at=when)]},
                        format="json")
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["recorded"], body["refused"]) == (1, 1)
    refused = body["results"][1]
    assert (refused["status"], refused["error"]["status"], refused["error"]["code"]) == ("refused", 400, "invalid_request")
    assert "occurred_at" in refused["error"]["fields"]


@pytest.mark.parametrize("when", IMPOSSIBLE)
def test_an_impossible_occurred_at_in_a_capture_is_a_400(api, funded, when):
    hold = api.post("/api/v1/holds", {"idempotency_key": "h", "credits": "10"}, format="json").json()
    response = api.post(f"/api/v1/holds/{hold['id']}/capture", {"events": [event(occurred_at=when)]}, format="json")
    envelope(response, 400, "invalid_request")


# --- JSON nested too deep --------------------------------------------------------------


@pytest.mark.parametrize("url", BODY_ENDPOINTS)
def test_json_nested_ten_thousand_deep_is_invalid_json(api, org, url):
    body = "[" * 10_000 + "]" * 10_000
    envelope(api.post(url, data=body, content_type="application/json"), 400, "invalid_json")


@pytest.mark.parametrize("url", ["/api/v1/usage/events", "/api/v1/checkout"])
def test_json_nested_deeper_than_the_limit_inside_a_field_is_invalid_json(api, org, url):
    deep: object = {}
    for _ in range(200):
        deep = {"a": deep}
    envelope(api.post(url, data=json.dumps({"metadata": deep, "kind": deep}), content_type="application/json"),
             400, "invalid_json")


# --- oversized bodies and Django's own refusals ------------------------------------------


def test_a_20_mb_body_is_413_payload_too_large(api, org):
    body = json.dumps({"events": [event("x" * 100)] * 1, "pad": "x" * (20 * 1024 * 1024)})
    envelope(api.post("/api/v1/usage/events/batch", data=body, content_type="application/json"),
             413, "payload_too_large")


@override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=1000)
def test_the_limit_is_the_setting(api, org):
    body = json.dumps({"workflow": "tweet", "pad": "x" * 2000})
    error = envelope(api.post("/api/v1/estimates", data=body, content_type="application/json"), 413, "payload_too_large")
    assert error["limit_bytes"] == 1000


def test_a_body_django_finds_too_big_while_reading_is_413_on_api_paths():
    # Django raises RequestDataTooBig where it reads a body itself (no or a false
    # Content-Length); its handler400 answers the API in the envelope.
    request = RequestFactory().post("/api/v1/usage/events")
    envelope(api_errors.bad_request(request, RequestDataTooBig()), 413, "payload_too_large")


def test_a_disallowed_host_on_an_api_path_is_json():
    response = Client().get("/api/v1/balance", HTTP_HOST="evil.example")
    envelope(response, 400, "invalid_request")


def test_an_unknown_api_path_is_a_json_404():
    envelope(Client().get("/api/v2/anything"), 404, "not_found")


def test_a_wrong_method_on_the_schema_is_a_json_405():
    envelope(Client().post("/api/schema/"), 405, "method_not_allowed")


def test_pages_keep_djangos_html_errors():
    response = Client().get("/billing/no-such-page", HTTP_HOST="evil.example")
    assert response.status_code == 400
    assert not response["Content-Type"].startswith("application/json")


@pytest.mark.parametrize("url", ["/api/v1/usage/events", "/api/v1/checkout"])
def test_a_charset_that_is_no_text_encoding_is_refused(api, org, url):
    # bz2_codec would decompress a small body past the size limit, checked before.
    response = api.post(url, data=b"{}", content_type="application/json; charset=bz2_codec")
    envelope(response, 400, "invalid_json")


def _crash(request):
    raise RuntimeError("a bug")


urlpatterns = [path("api/v1/crash", _crash)]
handler500 = "billing_project.api.server_error"


@override_settings(ROOT_URLCONF=__name__)
def test_a_crash_on_an_api_path_is_a_json_500():
    envelope(Client(raise_request_exception=False).get("/api/v1/crash"), 500, "server_error")
