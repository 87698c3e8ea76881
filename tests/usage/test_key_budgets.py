"""API keys' budgets: a monthly credit limit (402 key_limit_reached) and the meters
a key may record (403 meter_not_allowed), set at creation (service, command, page)
and on the keys page; the keys page shows each key's spend this month."""

import re
from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone
from rest_framework.test import APIClient

from accounts import services as account_services
from accounts.models import OrgAPIKey
from billing_project.errors import InvalidRequest, NotFound, PermissionDenied
from orgs.models import AuditEvent
from tests.factories import api_key_for
from usage import selectors, services
from usage.errors import KeyLimitReached, MeterNotAllowed
from usage.models import GrantSource, Hold, KeySpend, UsageEvent
from usage.services import UsageInput
from usage.services.writer import month_start

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("debit_path")]

C = 1_000_000
MEDIUM = 2_500_000  # action.medium costs 2.5 credits


def fund(org, credits=1000):
    services.credits_grant(org=org, amount_micros=credits * C, source=GrantSource.PURCHASE)


def limited_key(org, limit_micros=None, meters=(), name="agent"):
    """A key with a budget, and an API client calling with it."""
    key, secret = api_key_for(org, scopes=["read", "usage:write"], name=name)
    OrgAPIKey.objects.filter(pk=key.pk).update(monthly_limit_micros=limit_micros, meters=list(meters))
    key.refresh_from_db()
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return key, client


def post(client, url, body):
    return client.post(url, body, format="json")


def error(response, status, code):
    assert response.status_code == status, response.content
    body = response.json()["error"]
    assert body["code"] == code, body
    return body


def event(key, meter="action.medium", **kw):
    return {"idempotency_key": key, "meter": meter, "quantity": 1, **kw}


def key_spent(key) -> int:
    row = KeySpend.objects.filter(api_key_prefix=key.prefix, month=month_start(timezone.now())).first()
    return row.spent_micros if row else 0


# --- creating a key with a budget -------------------------------------------------------


def test_a_key_is_created_with_a_limit_and_meters(org, owner):
    key, _secret = account_services.api_key_create(
        org=org, name="runner", actor=owner, monthly_limit_micros=12 * C, meters=["action.medium", "compute.seconds"],
    )
    key.refresh_from_db()
    assert (key.monthly_limit_micros, key.meters) == (12 * C, ["action.medium", "compute.seconds"])
    audit = AuditEvent.objects.get(action="api_key.created")
    assert audit.data["monthly_limit_micros"] == 12 * C and audit.data["meters"] == key.meters


def test_without_a_budget_a_key_is_unlimited_and_records_every_meter(org, owner):
    key, _secret = account_services.api_key_create(org=org, name="runner", actor=owner)
    assert (key.monthly_limit_micros, key.meters) == (None, [])


@pytest.mark.parametrize(("limit", "meters", "code"), [
    (-1, [], "invalid_amount"), ("12", [], "invalid_amount"), (None, ["action.medium", "nope"], "unknown_meter"),
])
def test_a_bad_budget_is_refused_and_no_key_is_made(org, owner, limit, meters, code):
    with pytest.raises(InvalidRequest) as refused:
        account_services.api_key_create(org=org, name="x", actor=owner, monthly_limit_micros=limit, meters=meters)
    assert refused.value.code == code
    assert not OrgAPIKey.objects.exists()


def test_the_command_creates_a_key_with_a_limit_and_meters(org, capsys):
    call_command("create_api_key", "--org", "acme", "--monthly-limit", "12.5", "--meters", "action.medium")
    key = OrgAPIKey.objects.get(org=org)
    assert (key.monthly_limit_micros, key.meters) == (12_500_000, ["action.medium"])
    assert "a monthly limit of 12.5 credits, meters action.medium" in capsys.readouterr().err


@pytest.mark.parametrize("args", [["--monthly-limit", "-3"], ["--monthly-limit", "lots"], ["--meters", "nope"]])
def test_the_command_refuses_a_bad_budget(org, args):
    with pytest.raises(CommandError):
        call_command("create_api_key", "--org", "acme", *args)
    assert not OrgAPIKey.objects.exists()


# --- the monthly limit ------------------------------------------------------------------


def test_over_its_limit_a_key_gets_402_key_limit_reached(org):
    fund(org)
    key, client = limited_key(org, limit_micros=6 * C)
    assert post(client, "/api/v1/usage/events", event("a")).status_code == 201
    assert post(client, "/api/v1/usage/events", event("b")).status_code == 201

    body = error(post(client, "/api/v1/usage/events", event("c")), 402, "key_limit_reached")

    assert (body["limit"], body["spent"], body["required"], body["key_prefix"]) == ("6", "5", "2.5", key.prefix)
    assert body["settings_url"].endswith("/billing/api-keys/")
    assert UsageEvent.objects.filter(api_key_prefix=key.prefix).count() == 2
    assert key_spent(key) == 2 * MEDIUM
    # a replay of a recorded event is answered, not counted again
    assert post(client, "/api/v1/usage/events", event("a"))["Idempotent-Replayed"] == "true"
    assert key_spent(key) == 2 * MEDIUM


def test_the_limit_is_the_keys_own(org):
    """Another key of the org, or the same org without a key, is not limited by it."""
    fund(org)
    _key, client = limited_key(org, limit_micros=0)
    _other, other_client = limited_key(org, name="other")
    error(post(client, "/api/v1/usage/events", event("a")), 402, "key_limit_reached")
    assert post(other_client, "/api/v1/usage/events", event("b")).status_code == 201
    services.usage_record(org=org, event=UsageInput(idempotency_key="c", meter="action.medium", quantity=Decimal(1)))
    assert UsageEvent.objects.count() == 2


def test_a_limit_of_zero_records_nothing_chargeable(org, owner):
    fund(org)
    provider_key = services.provider_key_create(org=org, provider="openai", label="prod", last_four="x9Qz", actor=owner)
    key, client = limited_key(org, limit_micros=0)

    error(post(client, "/api/v1/usage/events", event("a")), 402, "key_limit_reached")
    error(post(client, "/api/v1/holds", {"idempotency_key": "h", "credits": "1"}), 402, "key_limit_reached")
    # usage on the org's own provider key costs nothing here, so it is recorded
    free = post(client, "/api/v1/usage/events", event("b", meter="ai.output_tokens", model="gpt-5-mini",
                                                     provider_key_id=provider_key.pk))
    assert free.status_code == 201 and free.json()["credits_charged"] == "0"
    assert key_spent(key) == 0


def test_a_batch_records_what_fits_and_refuses_the_rest_one_by_one(org):
    fund(org)
    key, client = limited_key(org, limit_micros=6 * C)
    body = post(client, "/api/v1/usage/events/batch", {"events": [
        event("a"), event("b"), event("c"), event("d", meter="action.small"),
    ]}).json()
    statuses = [(r["status"], r["error"]["code"] if r["error"] else None) for r in body["results"]]
    assert statuses == [("recorded", None), ("recorded", None), ("refused", "key_limit_reached"), ("recorded", None)]
    assert body["results"][2]["error"]["status"] == 402
    small = UsageEvent.objects.get(idempotency_key="d").credits_micros
    assert key_spent(key) == 2 * MEDIUM + small <= 6 * C


def test_open_holds_count_against_the_limit_and_captures_respect_it(org):
    fund(org)
    key, client = limited_key(org, limit_micros=10 * C)
    hold = post(client, "/api/v1/holds", {"idempotency_key": "h1", "credits": "8"}).json()
    assert Hold.objects.get(pk=hold["id"]).api_key_prefix == key.prefix

    body = error(post(client, "/api/v1/usage/events", event("a")), 402, "key_limit_reached")
    assert (body["spent"], body["required"]) == ("8", "2.5")
    error(post(client, "/api/v1/holds", {"idempotency_key": "h2", "credits": "3"}), 402, "key_limit_reached")

    # past the held 8, 3 more would make 11: refused, the hold stays open
    error(post(client, f"/api/v1/holds/{hold['id']}/capture", {"credits": "11"}), 402, "key_limit_reached")
    assert Hold.objects.get(pk=hold["id"]).status == "open"
    captured = post(client, f"/api/v1/holds/{hold['id']}/capture", {"credits": "9"})
    assert captured.status_code == 200, captured.content
    assert key_spent(key) == 9 * C
    error(post(client, "/api/v1/usage/events", event("b")), 402, "key_limit_reached")


def test_a_capture_with_events_respects_the_limit(org):
    fund(org)
    key, client = limited_key(org, limit_micros=6 * C)
    hold = post(client, "/api/v1/holds", {"idempotency_key": "h1", "credits": "2.5"}).json()
    three = [event("r:a"), event("r:b"), event("r:c")]  # 7.5 credits
    error(post(client, f"/api/v1/holds/{hold['id']}/capture", {"events": three}), 402, "key_limit_reached")
    assert not UsageEvent.objects.exists()
    captured = post(client, f"/api/v1/holds/{hold['id']}/capture", {"events": three[:2]})
    assert captured.status_code == 200, captured.content
    assert key_spent(key) == 5 * C


def test_the_held_part_is_always_capturable_even_after_the_limit_is_lowered(org, owner):
    fund(org)
    key, client = limited_key(org, limit_micros=10 * C)
    hold = post(client, "/api/v1/holds", {"idempotency_key": "h1", "credits": "8"}).json()
    services.api_key_budget_set(org=org, prefix=key.prefix, monthly_limit_micros=C, meters=[], actor=owner)
    assert post(client, f"/api/v1/holds/{hold['id']}/capture", {"credits": "8"}).status_code == 200
    assert key_spent(key) == 8 * C


def test_a_hold_released_frees_its_part_of_the_limit(org):
    fund(org)
    _key, client = limited_key(org, limit_micros=5 * C)
    hold = post(client, "/api/v1/holds", {"idempotency_key": "h1", "credits": "5"}).json()
    error(post(client, "/api/v1/usage/events", event("a")), 402, "key_limit_reached")
    assert post(client, f"/api/v1/holds/{hold['id']}/release", {}).status_code == 200
    assert post(client, "/api/v1/usage/events", event("a")).status_code == 201


def test_last_months_spend_does_not_count(org):
    fund(org)
    key, client = limited_key(org, limit_micros=5 * C)
    last_month = month_start(timezone.now().replace(day=1) - timedelta(days=1))
    KeySpend.objects.create(account=org.credit_account, api_key_prefix=key.prefix, month=last_month, spent_micros=5 * C)
    assert post(client, "/api/v1/usage/events", event("a")).status_code == 201


# --- meters -----------------------------------------------------------------------------


def test_a_meter_outside_the_keys_list_gets_403_meter_not_allowed(org):
    fund(org)
    key, client = limited_key(org, meters=["action.medium"])
    assert post(client, "/api/v1/usage/events", event("a")).status_code == 201

    body = error(post(client, "/api/v1/usage/events", event("b", meter="action.large")), 403, "meter_not_allowed")

    assert (body["meter"], body["allowed_meters"], body["key_prefix"]) == ("action.large", ["action.medium"], key.prefix)
    assert UsageEvent.objects.count() == 1


def test_in_a_batch_a_meter_outside_the_list_is_refused_on_its_own(org):
    fund(org)
    _key, client = limited_key(org, meters=["action.medium"])
    body = post(client, "/api/v1/usage/events/batch", {"events": [event("a"), event("b", meter="action.large")]}).json()
    assert [(r["status"], r["error"] and r["error"]["code"]) for r in body["results"]] == [
        ("recorded", None), ("refused", "meter_not_allowed")]
    assert body["results"][1]["error"]["status"] == 403


def test_a_capture_with_a_meter_outside_the_list_is_refused_whole(org):
    fund(org)
    _key, client = limited_key(org, meters=["action.medium"])
    hold = post(client, "/api/v1/holds", {"idempotency_key": "h1", "credits": "10"}).json()
    error(post(client, f"/api/v1/holds/{hold['id']}/capture", {"events": [event("a"), event("b", meter="action.xl")]}),
          403, "meter_not_allowed")
    assert Hold.objects.get(pk=hold["id"]).status == "open" and not UsageEvent.objects.exists()


def test_an_empty_list_allows_every_meter(org):
    fund(org)
    _key, client = limited_key(org, meters=[])
    assert post(client, "/api/v1/usage/events", event("a", meter="action.xl")).status_code == 201


def test_the_service_refuses_a_meter_outside_the_list_before_pricing(org):
    fund(org)
    key, _client = limited_key(org, meters=["compute.seconds"])
    with pytest.raises(MeterNotAllowed):
        services.usage_record(org=org, event=UsageInput(idempotency_key="a", meter="action.medium", quantity=Decimal(1)),
                              actor=key)


# --- changing a key's budget ------------------------------------------------------------


def test_setting_a_limit_counts_what_the_key_already_spent_this_month(org, owner):
    fund(org)
    key, client = limited_key(org)  # no limit yet: the one-statement debit records these
    for name in ("a", "b"):
        assert post(client, "/api/v1/usage/events", event(name)).status_code == 201

    key = services.api_key_budget_set(org=org, prefix=key.prefix, monthly_limit_micros=6 * C,
                                      meters=["action.medium"], actor=owner)

    assert key_spent(key) == 2 * MEDIUM
    body = error(post(client, "/api/v1/usage/events", event("c")), 402, "key_limit_reached")
    assert body["spent"] == "5"
    audit = AuditEvent.objects.get(action="api_key.budget_set")
    assert audit.data == {"prefix": key.prefix, "monthly_limit": "6", "previous": None,
                          "meters": ["action.medium"], "previous_meters": []}
    # raised, the key records again; removed, it is unlimited
    services.api_key_budget_set(org=org, prefix=key.prefix, monthly_limit_micros=10 * C, meters=[], actor=owner)
    assert post(client, "/api/v1/usage/events", event("c")).status_code == 201
    services.api_key_budget_set(org=org, prefix=key.prefix, monthly_limit_micros=None, meters=[], actor=owner)
    for name in ("d", "e", "f"):
        assert post(client, "/api/v1/usage/events", event(name)).status_code == 201


def test_only_owners_and_admins_change_a_budget_and_only_of_their_orgs_keys(org, member, other_org):
    key, _client = limited_key(org)
    with pytest.raises(PermissionDenied):
        services.api_key_budget_set(org=org, prefix=key.prefix, monthly_limit_micros=C, meters=[], actor=member)
    with pytest.raises(NotFound):
        services.api_key_budget_set(org=other_org, prefix=key.prefix, monthly_limit_micros=C, meters=[])
    with pytest.raises(InvalidRequest):
        services.api_key_budget_set(org=org, prefix=key.prefix, monthly_limit_micros=-1, meters=[])
    with pytest.raises(InvalidRequest):
        services.api_key_budget_set(org=org, prefix=key.prefix, monthly_limit_micros=None, meters=["nope"])
    key.refresh_from_db()
    assert (key.monthly_limit_micros, key.meters) == (None, [])


def test_the_resume_endpoint_answers_the_keys_budget(org):
    key, _client = limited_key(org, limit_micros=12_500_000, meters=["action.medium"])
    _other, client = limited_key(org, name="admin")
    OrgAPIKey.objects.filter(pk=_other.pk).update(scopes=["read", "usage:write", "billing:write"])
    body = post(client, f"/api/v1/api-keys/{key.prefix}/resume", {}).json()
    assert (body["monthly_limit"], body["meters"]) == ("12.5", ["action.medium"])


# --- the keys page ----------------------------------------------------------------------


def test_the_keys_page_shows_each_keys_spend_this_month(client, org, owner):
    fund(org)
    limited, limited_client = limited_key(org, limit_micros=10 * C, name="limited")
    free, free_client = limited_key(org, name="free")
    post(limited_client, "/api/v1/usage/events", event("a"))
    post(free_client, "/api/v1/usage/events", event("b"))
    post(free_client, "/api/v1/usage/events", event("c"))

    assert selectors.api_key_spend_this_month(org, [limited, free]) == {limited.prefix: MEDIUM, free.prefix: 2 * MEDIUM}
    client.force_login(owner)
    page = client.get("/billing/api-keys/").content.decode()

    def cell(prefix):
        found = re.search(rf'data-testid="key-spend-{prefix}">(.*?)</td>', page, re.S).group(1)
        return re.sub(r"<[^>]+>", "", found).strip()

    assert cell(limited.prefix) == "2.5 of 10"
    assert cell(free.prefix) == "5 no limit"


def test_the_keys_page_creates_a_key_with_a_budget_and_changes_it(client, org, owner):
    client.force_login(owner)
    created = client.post("/billing/api-keys/", {
        "name": "runner", "scopes": ["read", "usage:write"], "monthly_limit": "1,500", "meters": ["action.medium"],
    })
    assert created.status_code == 200
    key = OrgAPIKey.objects.get(org=org)
    assert (key.monthly_limit_micros, key.meters) == (1500 * C, ["action.medium"])

    changed = client.post(f"/billing/api-keys/{key.prefix}/budget/", {
        f"{key.prefix}-monthly_limit": "", f"{key.prefix}-meters": ["action.small", "action.xl"],
    }, follow=True)
    key.refresh_from_db()
    assert (key.monthly_limit_micros, key.meters) == (None, ["action.small", "action.xl"])
    assert "now has no monthly limit and may record action.small, action.xl" in changed.content.decode()

    refused = client.post(f"/billing/api-keys/{key.prefix}/budget/", {f"{key.prefix}-monthly_limit": "-5"}, follow=True)
    assert "zero or more credits" in refused.content.decode()
    key.refresh_from_db()
    assert key.monthly_limit_micros is None


def test_the_keys_page_refuses_a_key_with_a_bad_limit_or_meter(client, org, owner):
    client.force_login(owner)
    page = client.post("/billing/api-keys/", {"name": "runner", "scopes": ["read"], "monthly_limit": "lots"})
    assert "must be a number of credits" in page.content.decode()
    page = client.post("/billing/api-keys/", {"name": "runner", "scopes": ["read"], "meters": ["nope"]})
    assert "Select a valid choice" in page.content.decode()
    assert not OrgAPIKey.objects.exists()


def test_a_member_cannot_change_a_keys_budget(client, org, member):
    key, _ = limited_key(org)
    client.force_login(member)
    page = client.get("/billing/api-keys/").content.decode()
    assert f"{key.prefix}-monthly_limit" not in page
    client.post(f"/billing/api-keys/{key.prefix}/budget/", {f"{key.prefix}-monthly_limit": "5"})
    key.refresh_from_db()
    assert key.monthly_limit_micros is None
