"""Requests generated from the OpenAPI schema, sent to the app: no answer is a 5xx,
and every answer (errors included) matches what the schema says.

Bounded and deterministic: a fixed number of cases per operation and mode
(2 x 50 for each of the 26 operations: 2,600 cases, over a minute of one
core), derandomized, so a failure reproduces and the run costs the same each time.
Each operation runs inside one test's transaction (pytest-django), with a
real API key, so nothing it writes outlives it.
"""

from __future__ import annotations

import pytest
import schemathesis
from django.core.cache import cache
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error, response_schema_conformance, status_code_conformance

from accounts.authentication import APIKeyRateThrottle
from billing_project.wsgi import application
from tests.billing.conftest import catalog, fake_stripe, stripe_account, stripe_keys  # noqa: F401 (fixtures)
from tests.factories import api_key_for
from usage import services
from usage.models import GrantSource
from usage.services import rates

CASES_PER_MODE = 50
SCOPES = ["read", "usage:write", "billing:write"]
CHECKS = [not_a_server_error, status_code_conformance, response_schema_conformance]
# Operations that reach Stripe run against the fake Stripe API at the HTTP edge,
# connected and with the catalog synced, as the billing tests do.
STRIPE_PATHS = ("/api/v1/checkout", "/api/v1/portal", "/api/v1/invoices", "/api/v1/subscription",
                "/api/v1/plans", "/api/v1/packages")

SCHEMA = schemathesis.openapi.from_wsgi("/api/schema/?format=json", application)
OPERATIONS = [result.ok() for result in SCHEMA.get_all_operations()]


@pytest.fixture
def key(org, member, monkeypatch):
    """A funded org, a member to attribute usage to, and a key with every scope."""
    rates.clear_cache()
    rates.load_card_data(rates.read_data_file())
    services.credits_grant(org=org, amount_micros=10_000 * 1_000_000, source=GrantSource.PURCHASE)
    # A few thousand requests a minute is the point here, not a client to throttle.
    monkeypatch.setattr(APIKeyRateThrottle, "THROTTLE_RATES", {"api_key": "1000000/min"})
    cache.clear()
    # The WSGI handler closes the connection after each request, and with it the
    # test's transaction; Django's test client keeps it open the same way.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield api_key_for(org, scopes=SCOPES)[1]
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)
        cache.clear()
    rates.clear_cache()


@pytest.mark.django_db
@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=lambda m: m.value)
@pytest.mark.parametrize("operation", OPERATIONS, ids=lambda op: op.label)
def test_every_answer_is_documented_and_none_is_a_server_error(operation, mode, key, request):
    if operation.path.startswith(STRIPE_PATHS):
        request.getfixturevalue("stripe_account")
    headers = {"Authorization": f"Bearer {key}"}

    @settings(max_examples=CASES_PER_MODE, derandomize=True, database=None, deadline=None, print_blob=True,
              suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy(generation_mode=mode))
    def check(case):
        response = case.call(headers=headers)
        case.validate_response(response, checks=CHECKS)

    check()
