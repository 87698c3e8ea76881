"""`member_usage` over the API: the setting on GET/PATCH /api/v1/org, and usage,
holds and the 402 of an organization whose members pay for their own usage."""

import pytest
from rest_framework.test import APIClient

from orgs.models import AuditEvent, MemberUsage, Organization
from tests.factories import MembershipFactory, OrganizationFactory, UserFactory, api_key_for
from usage import services
from usage.models import CreditAccount, GrantSource

pytestmark = pytest.mark.django_db

C = 1_000_000


def client(secret: str) -> APIClient:
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return api


@pytest.fixture
def ada(org):
    user = UserFactory(email="ada@acme.test")
    personal = OrganizationFactory(name="Ada", slug="ada", is_personal=True)
    MembershipFactory(org=personal, user=user, role="owner")
    MembershipFactory(org=org, user=user)
    services.credits_grant(org=personal, amount_micros=10 * C, source=GrantSource.PURCHASE)
    services.credits_grant(org=org, amount_micros=100 * C, source=GrantSource.PURCHASE)
    return user, personal


@pytest.fixture
def personal_mode(org):
    Organization.objects.filter(pk=org.pk).update(member_usage=MemberUsage.PERSONAL)


def test_member_usage_is_read_and_set_with_billing_write(org):
    _key, secret = api_key_for(org, scopes=["read", "billing:write"], name="admin")
    api = client(secret)
    assert api.get("/api/v1/org").json()["member_usage"] == "pool"
    response = api.patch("/api/v1/org", {"member_usage": "personal"}, format="json")
    assert response.status_code == 200 and response.json()["member_usage"] == "personal"
    assert Organization.objects.get(pk=org.pk).member_usage == "personal"
    audit = AuditEvent.objects.get(org=org, action="org.member_usage")
    assert audit.data == {"member_usage": "personal", "previous": "pool"}
    assert api.patch("/api/v1/org", {"member_usage": "everyone"}, format="json").status_code == 400
    _reader, reader_secret = api_key_for(org, scopes=["read"], name="reader")
    assert client(reader_secret).patch("/api/v1/org", {"member_usage": "pool"}, format="json").status_code == 403


def test_a_personal_organization_cannot_make_its_member_pay_elsewhere():
    personal = OrganizationFactory(is_personal=True)
    _key, secret = api_key_for(personal, scopes=["read", "billing:write"])
    response = client(secret).patch("/api/v1/org", {"member_usage": "personal", "pause_on_runaway": True},
                                    format="json")
    assert response.status_code == 400 and response.json()["error"]["code"] == "invalid_member_usage"
    # every setting or none
    assert not Organization.objects.get(pk=personal.pk).pause_on_runaway


@pytest.mark.usefixtures("personal_mode")
def test_usage_without_a_member_is_a_400_and_with_one_the_member_pays(api, org, ada):
    user, personal = ada
    response = api.post("/api/v1/usage/events", {"idempotency_key": "a", "meter": "action.medium", "quantity": "1"},
                        format="json")
    assert response.status_code == 400 and response.json()["error"]["code"] == "member_required"
    response = api.post("/api/v1/usage/events", {"idempotency_key": "a", "meter": "action.medium", "quantity": "1",
                                                 "member": "ada@acme.test"}, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["paid_by"] == "member" and body["balance_after"] is None  # the member's balance stays theirs
    assert CreditAccount.objects.get(org=personal).balance_micros == 7_500_000
    assert CreditAccount.objects.get(org=org).balance_micros == 100 * C


def test_pooled_usage_says_the_organization_paid(api, org, ada):
    response = api.post("/api/v1/usage/events", {"idempotency_key": "a", "meter": "action.medium", "quantity": "1",
                                                 "member": "ada@acme.test"}, format="json")
    assert response.status_code == 201
    assert response.json()["paid_by"] == "organization" and response.json()["balance_after"] == "97.5"


@pytest.mark.usefixtures("personal_mode")
def test_the_402_names_whose_balance_is_short_and_links_their_top_up_page(api, org, ada):
    response = api.post("/api/v1/usage/events", {"idempotency_key": "x", "meter": "action.xl", "quantity": "1",
                                                 "member": "ada@acme.test"}, format="json")
    assert response.status_code == 402
    error = response.json()["error"]
    assert error["code"] == "insufficient_credits" and error["payer"] == "member"
    assert error["payer_email"] == "ada@acme.test"
    assert error["top_up_url"].endswith("/billing/top-up/?org=ada")
    assert error["billing_url"].endswith("/billing/?org=ada")


@pytest.mark.usefixtures("personal_mode")
def test_holds_for_the_org_are_the_orgs_to_capture_and_no_one_elses(api, org, ada, other_org):
    user, personal = ada
    response = api.post("/api/v1/holds", {"idempotency_key": "h", "credits": "4", "member": "ada@acme.test"},
                        format="json")
    assert response.status_code == 201, response.content
    hold = response.json()
    assert hold["paid_by"] == "member"
    _other, other_secret = api_key_for(other_org)
    _own, own_secret = api_key_for(personal)
    for secret in (other_secret, own_secret):
        assert client(secret).post(f"/api/v1/holds/{hold['id']}/release").status_code == 404
    response = api.post(f"/api/v1/holds/{hold['id']}/capture", {"credits": "3"}, format="json")
    assert response.status_code == 200, response.content
    assert CreditAccount.objects.get(org=personal).balance_micros == 7 * C
    assert api.post("/api/v1/holds", {"idempotency_key": "i", "credits": "1"}, format="json").json()["error"]["code"] == "member_required"


@pytest.mark.usefixtures("personal_mode")
def test_the_usage_summary_shows_members_totals_never_their_balances(api, org, ada):
    api.post("/api/v1/usage/events/batch", {"events": [
        {"idempotency_key": "1", "meter": "action.medium", "quantity": "1", "member": "ada@acme.test"},
        {"idempotency_key": "2", "meter": "action.small", "quantity": "1", "member": "ada@acme.test"},
    ]}, format="json")
    response = api.get("/api/v1/usage/summary", {"group_by": "member", "period": "month"})
    assert response.status_code == 200, response.content
    rows = response.json()["rows"]
    assert {(r["key"], r["credits"]) for r in rows} == {("ada@acme.test", "2.5"), ("ada@acme.test", "1")}
    assert "balance" not in str(rows)
