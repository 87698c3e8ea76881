"""GET /api/v1/holds/{id}: a platform (or an agent) looks up what a hold has left."""

import pytest
from rest_framework.test import APIClient

from tests.factories import OrganizationFactory, api_key_for
from usage import services
from usage.models import GrantSource

pytestmark = pytest.mark.django_db
C = 1_000_000


def test_it_shows_what_a_hold_used_and_has_left(org, api):
    services.credits_grant(org=org, amount_micros=100 * C, source=GrantSource.PURCHASE)
    parent = api.post("/api/v1/holds", {"idempotency_key": "run-1", "credits": "20"}, format="json").json()
    api.post("/api/v1/usage/events", {"idempotency_key": "e1", "meter": "action.medium", "quantity": 2,
                                      "hold_id": parent["id"]}, format="json")
    child = api.post("/api/v1/holds", {"idempotency_key": "run-1.a", "credits": "5",
                                       "parent_hold_id": parent["id"]}, format="json").json()

    shown = api.get(f"/api/v1/holds/{parent['id']}")
    assert shown.status_code == 200
    body = shown.json()
    # 20 reserved; 5 spent by the event and 5 carved into the child are both taken from it: 10 left.
    assert (body["status"], body["credits"], body["recorded"]) == ("open", "20", "5")
    assert (body["used"], body["left"]) == ("10", "10")
    assert api.get(f"/api/v1/holds/{child['id']}").json()["parent_hold_id"] == parent["id"]


def test_another_orgs_hold_or_an_unknown_one_is_404(org, api):
    other = OrganizationFactory()
    services.credits_grant(org=other, amount_micros=10 * C, source=GrantSource.PURCHASE)
    _key, secret = api_key_for(other)
    theirs = APIClient()
    theirs.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    hold = theirs.post("/api/v1/holds", {"idempotency_key": "h", "credits": "1"}, format="json").json()

    for hold_id in (hold["id"], 999999):
        response = api.get(f"/api/v1/holds/{hold_id}")
        assert response.status_code == 404 and response.json()["error"]["code"] == "hold_not_found"
