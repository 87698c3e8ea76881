"""Every API failure answers the error envelope, never HTML and never a bare 500."""

import pytest
from django.test import override_settings
from django.urls import path
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from billing_project.errors import PaymentRequired
from tests.factories import api_key_for

pytestmark = pytest.mark.django_db


class _EchoSerializer(serializers.Serializer):
    quantity = serializers.IntegerField(min_value=1)
    meter = serializers.CharField()


class _EchoView(APIView):
    def post(self, request):
        serializer = _EchoSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        if serializer.validated_data["quantity"] > 100:
            raise PaymentRequired("Not enough credits.", balance=100, required=serializer.validated_data["quantity"])
        return Response(serializer.validated_data)


urlpatterns = [path("api/v1/echo", _EchoView.as_view())]


def _assert_envelope(response, status: int, code: str) -> dict:
    assert response.status_code == status
    assert response["Content-Type"].startswith("application/json")
    error = response.json()["error"]
    assert error["code"] == code
    assert error["message"]
    assert error["type"]
    return error


@override_settings(ROOT_URLCONF=__name__)
def test_invalid_fields_get_400_with_each_field_named(api):
    error = _assert_envelope(api.post("/api/v1/echo", {"quantity": 0}, format="json"), 400, "invalid_request")
    assert set(error["fields"]) == {"quantity", "meter"}
    assert error["message"].startswith("quantity:")


@override_settings(ROOT_URLCONF=__name__)
def test_malformed_json_gets_400(api):
    response = api.post("/api/v1/echo", data="{not json", content_type="application/json")
    _assert_envelope(response, 400, "invalid_json")


@override_settings(ROOT_URLCONF=__name__)
def test_a_non_json_body_gets_415(api):
    response = api.post("/api/v1/echo", data="quantity=1", content_type="application/x-www-form-urlencoded")
    _assert_envelope(response, 415, "unsupported_media_type")


@override_settings(ROOT_URLCONF=__name__)
def test_a_domain_refusal_carries_its_details(api):
    error = _assert_envelope(api.post("/api/v1/echo", {"quantity": 500, "meter": "m"}, format="json"), 402, "insufficient_credits")
    assert error["type"] == "payment_required"
    assert (error["balance"], error["required"]) == (100, 500)


def test_an_unknown_endpoint_gets_404(api):
    _assert_envelope(api.get("/api/v1/no-such-thing"), 404, "not_found")


def test_a_wrong_method_gets_405(api):
    _assert_envelope(api.delete("/api/v1/org"), 405, "method_not_allowed")


def test_too_many_requests_get_429_with_retry_after(org, settings):
    from django.core.cache import cache
    from rest_framework.test import APIClient

    from accounts.authentication import APIKeyRateThrottle

    cache.clear()
    _key, secret = api_key_for(org)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    original = APIKeyRateThrottle.THROTTLE_RATES
    APIKeyRateThrottle.THROTTLE_RATES = {"api_key": "3/min"}
    try:
        statuses = [client.get("/api/v1/org").status_code for _ in range(4)]
        last = client.get("/api/v1/org")
    finally:
        APIKeyRateThrottle.THROTTLE_RATES = original
        cache.clear()
    assert statuses == [200, 200, 200, 429]
    _assert_envelope(last, 429, "rate_limited")
    assert int(last["Retry-After"]) > 0


def test_the_openapi_schema_and_docs_are_served(client):
    schema = client.get("/api/schema/")
    assert schema.status_code == 200
    assert b"/api/v1/org" in schema.content
    docs = client.get("/api/docs/")
    assert docs.status_code == 200
    assert b"swagger-ui" in docs.content
