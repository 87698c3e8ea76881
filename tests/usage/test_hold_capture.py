"""What a capture may take: the held amount always; what goes past it only as a
strict debit would (available credits, the member's monthly cap), unless the
plan allows overage. A refused capture records nothing and leaves the hold open."""

from datetime import timedelta
from decimal import Decimal

import pytest
import time_machine
from django.utils import timezone

from orgs.models import AuditEvent
from usage import services
from usage.errors import InsufficientCredits, SpendLimitReached
from usage.models import CreditAccount, GrantSource, Hold, HoldStatus, LedgerEntry, MemberSpend, UsageEvent
from usage.services import UsageInput

pytestmark = pytest.mark.django_db

C = 1_000_000


def fund(org, credits):
    return services.credits_grant(org=org, amount_micros=credits * C, source=GrantSource.PURCHASE)


def account(org):
    return CreditAccount.objects.get(org=org)


def assert_nothing_recorded(org, hold, balance_micros):
    hold.refresh_from_db()
    assert hold.status == HoldStatus.OPEN and hold.captured_micros in (None, 0)
    acct = account(org)
    assert (acct.balance_micros, acct.held_micros, acct.debt_micros) == (balance_micros, hold.amount_micros, 0)
    assert not LedgerEntry.objects.filter(hold=hold).exists()
    assert not AuditEvent.objects.filter(org=org, action="hold.captured").exists()


# --- through the services ------------------------------------------------------


def test_a_capture_past_the_hold_and_the_balance_is_refused_and_records_nothing(org):
    fund(org, 6_050)
    hold = services.hold_create(org=org, amount_micros=1 * C)
    with pytest.raises(InsufficientCredits) as refused:
        services.hold_capture(org=org, hold_id=hold.pk, amount_micros=7_050 * C)
    assert refused.value.details["required"] == "7050" and refused.value.details["available"] == "6050"
    assert_nothing_recorded(org, hold, 6_050 * C)

    # the hold is still open, and capturable within what the org has
    hold, entry = services.hold_capture(org=org, hold_id=hold.pk, amount_micros=6_050 * C)
    assert hold.status == HoldStatus.CAPTURED and entry.amount_micros == -6_050 * C
    acct = account(org)
    assert (acct.balance_micros, acct.held_micros, acct.debt_micros) == (0, 0, 0)


def test_the_part_above_the_hold_is_compared_with_what_is_available_besides_it(org):
    fund(org, 10)
    hold = services.hold_create(org=org, amount_micros=4 * C)
    services.hold_create(org=org, amount_micros=3 * C)  # another run's reservation is not this capture's
    # 4 held + 3 available besides both holds = 7 at most
    with pytest.raises(InsufficientCredits):
        services.hold_capture(org=org, hold_id=hold.pk, amount_micros=7 * C + 1)
    _hold, entry = services.hold_capture(org=org, hold_id=hold.pk, amount_micros=7 * C)
    acct = account(org)
    assert entry.amount_micros == -7 * C and (acct.balance_micros, acct.held_micros) == (3 * C, 3 * C)
    assert acct.available_micros == 0


def test_the_held_amount_is_always_capturable_even_after_the_hold_expired(org):
    fund(org, 10)
    hold = services.hold_create(org=org, amount_micros=5 * C, expires_in=timedelta(minutes=15))
    with time_machine.travel(timezone.now() + timedelta(minutes=16)):
        assert services.holds_expire() == 1
    services.credits_debit(org=org, amount_micros=8 * C, idempotency_key="spent-meanwhile")
    # 2 left: the 5 held are still owed for the work done, but nothing past them
    with pytest.raises(InsufficientCredits):
        services.hold_capture(org=org, hold_id=hold.pk, amount_micros=5 * C + 1)
    _hold, entry = services.hold_capture(org=org, hold_id=hold.pk, amount_micros=5 * C)
    acct = account(org)
    assert entry.amount_micros == -5 * C and (acct.balance_micros, acct.debt_micros) == (-3 * C, 3 * C)


def test_a_members_cap_refuses_the_part_above_a_hold(org, member, owner):
    fund(org, 1_000)
    services.member_limit_set(org=org, member=member, monthly_limit_micros=5 * C, actor=owner)
    hold = services.hold_create(org=org, amount_micros=1 * C, member=member)
    with pytest.raises(SpendLimitReached):
        services.hold_capture(org=org, hold_id=hold.pk, amount_micros=500 * C)
    assert_nothing_recorded(org, hold, 1_000 * C)
    assert not MemberSpend.objects.filter(member=member).exists()

    services.hold_capture(org=org, hold_id=hold.pk, amount_micros=5 * C)  # exactly the cap
    assert MemberSpend.objects.get(member=member).spent_micros == 5 * C


def test_a_capture_within_the_hold_is_never_refused_by_the_cap(org, member, owner):
    fund(org, 100)
    services.member_limit_set(org=org, member=member, monthly_limit_micros=5 * C, actor=owner)
    hold = services.hold_create(org=org, amount_micros=5 * C, member=member)
    services.member_limit_set(org=org, member=member, monthly_limit_micros=1 * C, actor=owner)  # lowered mid-run
    services.hold_capture(org=org, hold_id=hold.pk, amount_micros=5 * C)
    assert MemberSpend.objects.get(member=member).spent_micros == 5 * C


def test_a_capture_with_events_past_the_hold_is_refused_and_the_events_are_not_kept(org):
    fund(org, 6)
    hold = services.hold_create(org=org, amount_micros=1 * C)
    events = [UsageInput(idempotency_key="x1", meter="action.large", quantity=Decimal(1)),  # 5
              UsageInput(idempotency_key="x2", meter="action.medium", quantity=Decimal(1))]  # 2
    with pytest.raises(InsufficientCredits):
        services.hold_capture_events(org=org, hold_id=hold.pk, events=events)
    assert_nothing_recorded(org, hold, 6 * C)
    assert not UsageEvent.objects.filter(account__org=org).exists()

    hold, kept = services.hold_capture_events(org=org, hold_id=hold.pk, events=events[:1])
    assert hold.captured_micros == 5 * C and [e.idempotency_key for e in kept] == ["x1"]


def test_an_overage_plan_keeps_its_overage_on_capture(org):
    fund(org, 10)
    services.account_set_plan(org=org, plan_code="pro", overage_allowed=True)
    hold = services.hold_create(org=org, amount_micros=8 * C)
    services.hold_capture(org=org, hold_id=hold.pk, amount_micros=14 * C)
    acct = account(org)
    assert (acct.balance_micros, acct.debt_micros) == (-4 * C, 4 * C)


def test_an_overage_plan_still_keeps_the_members_cap(org, member, owner):
    fund(org, 10)
    services.account_set_plan(org=org, plan_code="pro", overage_allowed=True)
    services.member_limit_set(org=org, member=member, monthly_limit_micros=5 * C, actor=owner)
    hold = services.hold_create(org=org, amount_micros=1 * C, member=member)
    with pytest.raises(SpendLimitReached):
        services.hold_capture(org=org, hold_id=hold.pk, amount_micros=500 * C)
    assert Hold.objects.get(pk=hold.pk).status == HoldStatus.OPEN


# --- through the API -----------------------------------------------------------


def post(api, url, body):
    return api.post(url, body, format="json")


def test_the_api_answers_402_and_keeps_the_hold_open(api, org):
    fund(org, 6_050)
    hold = post(api, "/api/v1/holds", {"idempotency_key": "run-1", "credits": "1"}).json()

    refused = post(api, f"/api/v1/holds/{hold['id']}/capture", {"credits": "7050"})

    assert refused.status_code == 402, refused.content
    body = refused.json()["error"]
    assert body["type"] == "payment_required" and body["code"] == "insufficient_credits"
    assert body["required"] == "7050" and body["top_up_url"] and body["billing_url"]
    assert api.get("/api/v1/balance").json()["balance"] == "6050"
    assert Hold.objects.get(pk=hold["id"]).status == HoldStatus.OPEN

    refused = post(api, f"/api/v1/holds/{hold['id']}/capture", {"events": [
        {"idempotency_key": "run-1:a", "meter": "action.xl", "quantity": 1000}]})
    assert refused.status_code == 402 and refused.json()["error"]["code"] == "insufficient_credits"

    captured = post(api, f"/api/v1/holds/{hold['id']}/capture", {"credits": "6050"})
    assert captured.status_code == 200 and captured.json()["balance_after"] == "0"


def test_the_api_answers_402_spend_limit_reached_for_a_capped_member(api, org, member, owner):
    fund(org, 1_000)
    services.member_limit_set(org=org, member=member, monthly_limit_micros=5 * C, actor=owner)
    hold = post(api, "/api/v1/holds", {"idempotency_key": "run-1", "credits": "1", "member": member.email}).json()

    refused = post(api, f"/api/v1/holds/{hold['id']}/capture", {"credits": "500"})

    assert refused.status_code == 402, refused.content
    assert refused.json()["error"]["code"] == "spend_limit_reached"
    assert Hold.objects.get(pk=hold["id"]).status == HoldStatus.OPEN
    assert post(api, f"/api/v1/holds/{hold['id']}/capture", {"credits": "5"}).status_code == 200
