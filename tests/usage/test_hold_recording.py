"""Usage recorded against an open hold (`hold_id` on usage events): the hold's
reservation pays first and shrinks while it stays open; what goes beyond it is
checked like any event. Capturing with no amount captures what was recorded,
releasing frees the rest, and every figure that counts open holds (available
credits, members' caps, keys' limits, in Python and in SQL) counts only what
a hold still reserves."""

from datetime import timedelta
from decimal import Decimal

import pytest
import time_machine
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.models import OrgAPIKey
from orgs.models import MemberUsage
from orgs.services import org_member_usage_set
from tests.factories import MembershipFactory, OrganizationFactory, UserFactory, api_key_for
from usage import selectors, services
from billing import services as billing_services
from orgs.entitlements import FeatureNotInPlan
from usage.errors import SpendLimitReached
from usage.models import CreditAccount, GrantSource, Hold, HoldStatus, KeySpend, LedgerEntry, MemberSpend, UsageEvent
from usage.services import UsageInput, month_start

pytestmark = pytest.mark.django_db

C = 1_000_000
MEDIUM = 2_500_000  # action.medium on the default card


def fund(org, credits):
    services.credits_grant(org=org, amount_micros=credits * C, source=GrantSource.PURCHASE)


def post(api, url, body):
    return api.post(url, body, format="json")


def error(response, status, code):
    assert response.status_code == status, response.content
    body = response.json()["error"]
    assert body["code"] == code, body
    return body


def event(key, hold=None, **kw):
    body = {"idempotency_key": key, "meter": "action.medium", "quantity": 1, **kw}
    if hold is not None:
        body["hold_id"] = hold
    return body


def figures(org):
    account = CreditAccount.objects.get(org=org)
    return account.balance_micros, account.held_micros, account.available_micros


def hold_of(api, credits, key="h", **kw):
    response = post(api, "/api/v1/holds", {"idempotency_key": key, "credits": str(credits), **kw})
    assert response.status_code == 201, response.content
    return response.json()["id"]


def test_usage_against_a_hold_shrinks_its_reservation_and_capture_takes_what_was_recorded(api, org):
    fund(org, 100)
    hold_id = hold_of(api, 10)
    response = post(api, "/api/v1/usage/events", event("a", hold_id))
    assert response.status_code == 201, response.content
    assert response.json()["hold_id"] == hold_id and response.json()["balance_after"] == "97.5"
    # debited at once; what was reserved for it is no longer held, so available did not move
    assert figures(org) == (97_500_000, 7_500_000, 90 * C)
    hold = Hold.objects.get(pk=hold_id)
    assert (hold.used_micros, hold.recorded_micros, hold.status) == (MEDIUM, MEDIUM, HoldStatus.OPEN)
    balance = api.get("/api/v1/balance").json()
    assert (balance["held"], balance["available"]) == ("7.5", "90")

    for key in "bcde":  # 12.5 in all: the last 2.5 go past the reservation
        assert post(api, "/api/v1/usage/events", event(key, hold_id)).status_code == 201
    hold.refresh_from_db()
    assert (hold.used_micros, hold.recorded_micros) == (10 * C, 12_500_000)
    assert figures(org) == (87_500_000, 0, 87_500_000)

    captured = post(api, f"/api/v1/holds/{hold_id}/capture", {})
    assert captured.status_code == 200, captured.content
    body = captured.json()
    assert (body["hold"]["status"], body["hold"]["captured"], body["hold"]["recorded"]) == ("captured", "12.5", "12.5")
    assert body["hold"]["left"] == "0" and body["balance_after"] == "87.5"
    assert len(body["events"]) == 5
    assert not LedgerEntry.objects.filter(idempotency_key=f"hold:{hold_id}:capture").exists()  # nothing more owed
    assert figures(org) == (87_500_000, 0, 87_500_000)
    assert services.ledger_reconcile(org_ids=[org.pk]) == []


def test_the_part_beyond_what_is_left_is_checked_like_any_event(api, org):
    fund(org, 10)
    hold_id = hold_of(api, 8)  # 2 available besides it
    for key in "abc":
        assert post(api, "/api/v1/usage/events", event(key, hold_id)).status_code == 201
    # 0.5 left in the hold, 2 beyond it: exactly what is available
    assert post(api, "/api/v1/usage/events", event("d", hold_id)).status_code == 201
    assert figures(org) == (0, 0, 0)
    body = error(post(api, "/api/v1/usage/events", event("e", hold_id)), 402, "insufficient_credits")
    assert body["required"] == "2.5"
    hold = Hold.objects.get(pk=hold_id)
    assert (hold.used_micros, hold.recorded_micros) == (8 * C, 10 * C)
    assert not UsageEvent.objects.filter(idempotency_key="e").exists()
    assert services.ledger_reconcile(org_ids=[org.pk]) == []


def test_a_refused_event_leaves_the_reservation_as_it_was(api, org):
    fund(org, 2)
    hold_id = hold_of(api, 1)  # 1 available besides it: 2.5 is 0.5 too much
    body = error(post(api, "/api/v1/usage/events", event("a", hold_id)), 402, "insufficient_credits")
    assert (body["required"], body["available"]) == ("2.5", "2")
    hold = Hold.objects.get(pk=hold_id)
    assert (hold.used_micros, hold.recorded_micros) == (0, 0)
    assert figures(org) == (2 * C, 1 * C, 1 * C)


def test_a_capture_with_an_amount_takes_what_was_recorded_into_account(api, org):
    fund(org, 100)
    hold_id = hold_of(api, 10)
    post(api, "/api/v1/usage/events", event("a", hold_id))
    post(api, "/api/v1/usage/events", event("b", hold_id))
    error(post(api, f"/api/v1/holds/{hold_id}/capture", {"credits": "4"}), 409, "capture_below_recorded")
    assert Hold.objects.get(pk=hold_id).status == HoldStatus.OPEN

    captured = post(api, f"/api/v1/holds/{hold_id}/capture", {"credits": "8"})
    assert captured.status_code == 200, captured.content
    entry = LedgerEntry.objects.get(idempotency_key=f"hold:{hold_id}:capture")
    assert entry.amount_micros == -3 * C  # 8 in all, 5 recorded already
    assert figures(org) == (92 * C, 0, 92 * C)
    # captured again with the same amount, or none: the first capture
    assert post(api, f"/api/v1/holds/{hold_id}/capture", {"credits": "8"}).status_code == 200
    assert post(api, f"/api/v1/holds/{hold_id}/capture", {}).status_code == 200
    error(post(api, f"/api/v1/holds/{hold_id}/capture", {"credits": "9"}), 409, "hold_already_captured")
    assert services.ledger_reconcile(org_ids=[org.pk]) == []


def test_a_capture_with_events_adds_them_to_what_was_recorded(api, org):
    fund(org, 100)
    hold_id = hold_of(api, 10)
    post(api, "/api/v1/usage/events", event("a", hold_id))
    captured = post(api, f"/api/v1/holds/{hold_id}/capture", {"events": [event("b"), event("c")]})
    assert captured.status_code == 200, captured.content
    assert captured.json()["hold"]["captured"] == "7.5"
    assert figures(org) == (92_500_000, 0, 92_500_000)
    assert services.ledger_reconcile(org_ids=[org.pk]) == []


def test_releasing_frees_the_rest_and_keeps_what_was_recorded(api, org):
    fund(org, 100)
    hold_id = hold_of(api, 10)
    post(api, "/api/v1/usage/events", event("a", hold_id))
    released = post(api, f"/api/v1/holds/{hold_id}/release", {})
    assert released.status_code == 200 and released.json()["status"] == "released"
    assert figures(org) == (97_500_000, 0, 97_500_000)
    assert services.ledger_reconcile(org_ids=[org.pk]) == []


def test_expiry_frees_only_what_is_left(org):
    fund(org, 100)
    hold = services.hold_create(org=org, amount_micros=10 * C, expires_in=timedelta(minutes=1))
    services.usage_record(org=org, event=UsageInput("a", "action.medium", Decimal(1), hold_id=hold.pk))
    with time_machine.travel(timezone.now() + timedelta(minutes=2)):
        assert services.holds_expire() == 1
    assert figures(org) == (97_500_000, 0, 97_500_000)
    assert services.ledger_reconcile(org_ids=[org.pk]) == []


def test_only_an_open_hold_of_the_org_takes_usage(api, org, other_org):
    fund(org, 100)
    fund(other_org, 100)
    theirs = services.hold_create(org=other_org, amount_micros=C)
    error(post(api, "/api/v1/usage/events", event("a", theirs.pk)), 404, "hold_not_found")
    error(post(api, "/api/v1/usage/events", event("b", 999_999)), 404, "hold_not_found")
    error(post(api, "/api/v1/usage/events", event("c", True)), 400, "invalid_request")
    # A shell script that took the id out of a JSON answer as text is told what to send,
    # not that its hold is none of the org's.
    quoted = error(post(api, "/api/v1/usage/events", event("c", str(theirs.pk))), 400, "invalid_request")
    assert "as a JSON number" in quoted["fields"]["hold_id"][0]

    captured = hold_of(api, 5, key="h1")
    post(api, f"/api/v1/holds/{captured}/capture", {})
    error(post(api, "/api/v1/usage/events", event("d", captured)), 409, "hold_not_open")
    released = hold_of(api, 5, key="h2")
    post(api, f"/api/v1/holds/{released}/release", {})
    error(post(api, "/api/v1/usage/events", event("e", released)), 409, "hold_not_open")
    expiring = hold_of(api, 5, key="h3", expires_in=60)
    with time_machine.travel(timezone.now() + timedelta(minutes=2)):
        error(post(api, "/api/v1/usage/events", event("f", expiring)), 409, "hold_not_open")
    assert not UsageEvent.objects.filter(account__org=org).exists()
    assert figures(other_org)[1] == C


def test_a_replay_with_the_hold_is_a_replay_even_once_it_is_closed(api, org):
    fund(org, 100)
    hold_id = hold_of(api, 10)
    first = post(api, "/api/v1/usage/events", event("a", hold_id))
    again = post(api, "/api/v1/usage/events", event("a", hold_id))
    assert again.status_code == 201 and again["Idempotent-Replayed"] == "true"
    assert again.json()["id"] == first.json()["id"]
    assert Hold.objects.get(pk=hold_id).recorded_micros == MEDIUM
    # the same key without the hold is another request
    error(post(api, "/api/v1/usage/events", event("a")), 409, "idempotency_key_reused")
    post(api, f"/api/v1/holds/{hold_id}/capture", {})
    late = post(api, "/api/v1/usage/events", event("a", hold_id))
    assert late.status_code == 201 and late["Idempotent-Replayed"] == "true"


def test_a_batch_charges_each_event_against_its_hold_in_order(api, org):
    fund(org, 10)
    one, two = hold_of(api, 4, key="h1"), hold_of(api, 3, key="h2")  # 3 available besides them
    events = [event("a", one), event("b", two), event("c", one), event("d"), event("e", two), event("f", 999_999)]
    body = post(api, "/api/v1/usage/events/batch", {"events": events}).json()
    statuses = [(r["status"], r["error"]["code"] if r["error"] else None) for r in body["results"]]
    # a: 2.5 of one; b: 2.5 of two; c: 1.5 of one + 1 beyond; d: 2 available, refused;
    # e: 0.5 of two + 2 beyond: fits; f: unknown hold
    assert statuses == [("recorded", None), ("recorded", None), ("recorded", None),
                        ("refused", "insufficient_credits"), ("recorded", None), ("refused", "hold_not_found")]
    assert [(h.used_micros, h.recorded_micros) for h in Hold.objects.order_by("pk")] == [
        (4 * C, 5 * C), (3 * C, 5 * C)]
    assert figures(org) == (0, 0, 0)
    assert services.ledger_reconcile(org_ids=[org.pk]) == []


def test_the_members_cap_counts_what_the_hold_still_reserves(org, owner, member, debit_path):
    """On both debit paths (the SQL function and the Python writer): a cap of 10
    with a hold of 6 of which 2.5 were recorded leaves 10 - 2.5 - 3.5 = 4."""
    fund(org, 100)
    services.member_limit_set(org=org, member=member, monthly_limit_micros=10 * C, actor=owner)
    hold = services.hold_create(org=org, amount_micros=6 * C, member=member)
    recorded = services.usage_record(org=org, event=UsageInput("a", "action.medium", Decimal(1), hold_id=hold.pk))
    assert recorded.event.member == member  # attributed to the hold's member
    services.usage_record(org=org, event=UsageInput("b", "action.medium", Decimal(1), member=member))
    with pytest.raises(SpendLimitReached):
        services.usage_record(org=org, event=UsageInput("c", "action.medium", Decimal(1), member=member))
    assert MemberSpend.objects.get(member=member).spent_micros == 2 * MEDIUM
    row = next(r for r in selectors.member_spend(org) if r.member_id == member.pk)
    assert (row.spent_micros, row.held_micros) == (2 * MEDIUM, 3_500_000)


def test_another_members_event_cannot_use_a_members_hold(api, org, owner, member):
    fund(org, 100)
    hold = services.hold_create(org=org, amount_micros=6 * C, member=member)
    error(post(api, "/api/v1/usage/events", event("a", hold.pk, member=owner.email)), 409, "hold_member_mismatch")


def test_a_keys_limit_counts_what_its_holds_still_reserve(org):
    fund(org, 100)
    key, secret = api_key_for(org, scopes=["read", "usage:write"])
    OrgAPIKey.objects.filter(pk=key.pk).update(monthly_limit_micros=10 * C)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    hold_id = hold_of(client, 8)
    for name in "abcd":  # 7.5 of the hold, then 0.5 of it and 2 beyond: 10 in all
        assert post(client, "/api/v1/usage/events", event(name, hold_id)).status_code == 201
    error(post(client, "/api/v1/usage/events", event("e", hold_id)), 402, "key_limit_reached")
    error(post(client, "/api/v1/usage/events", event("f")), 402, "key_limit_reached")
    assert KeySpend.objects.get(api_key_prefix=key.prefix, month=month_start(timezone.now())).spent_micros == 10 * C


@pytest.fixture
def ada(org):
    user = UserFactory(email="ada@example.test")
    personal = OrganizationFactory(name="Ada", slug="ada", is_personal=True)
    MembershipFactory(org=personal, user=user, role="owner")
    MembershipFactory(org=org, user=user, role="member")
    fund(personal, 10)
    org_member_usage_set(org=org, member_usage=MemberUsage.PERSONAL)
    org.refresh_from_db()
    return user, personal


def test_in_personal_mode_the_members_hold_pays_from_their_balance(api, org, ada):
    user, personal = ada
    fund(org, 100)
    hold_id = hold_of(api, 6, member=user.email)
    recorded = post(api, "/api/v1/usage/events", event("a", hold_id))  # the member comes from the hold
    assert recorded.status_code == 201, recorded.content
    assert recorded.json()["paid_by"] == "member" and recorded.json()["member"] == user.email
    assert figures(personal) == (7_500_000, 3_500_000, 4 * C)
    assert figures(org) == (100 * C, 0, 100 * C)
    for key in "bcd":  # 3.5 left, then 6 beyond it: all of the 10 the member had
        assert post(api, "/api/v1/usage/events", event(key, hold_id)).status_code == 201
    error(post(api, "/api/v1/usage/events", event("e", hold_id)), 402, "insufficient_credits")
    assert post(api, f"/api/v1/holds/{hold_id}/capture", {}).json()["hold"]["captured"] == "10"
    assert figures(personal) == (0, 0, 0)
    assert services.ledger_reconcile(org_ids=[org.pk, personal.pk]) == []


def test_a_gated_meter_against_a_hold_is_refused_as_without_one(org):
    """A downgrade during a run: the plan's features are decided on the locked row,
    hold or not, and the refusal leaves the reservation as it was."""
    billing_services.catalog_load()
    fund(org, 100)
    services.account_set_plan(org=org, plan_code="pro", overage_allowed=False,
                              features=["basic_workflows", "media_generation"])
    hold = services.hold_create(org=org, amount_micros=10 * C, meters=["image.generated"])
    image = UsageInput("img", "image.generated", Decimal(1), model="gpt-image-1", hold_id=hold.pk)
    services.account_set_plan(org=org, plan_code="free", overage_allowed=False, features=["basic_workflows"])
    with pytest.raises(FeatureNotInPlan):
        services.usage_record(org=org, event=image)
    hold.refresh_from_db()
    assert (hold.used_micros, hold.recorded_micros) == (0, 0)
    assert figures(org) == (100 * C, 10 * C, 90 * C)
