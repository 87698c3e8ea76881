"""Child holds (`parent_hold_id`): a sub-agent's budget carved out of its
parent's reservation. A child reserves nothing more from the balance, never
spends past what it and its parents have left, and a parent that closes
settles its open children first."""

from datetime import timedelta
from decimal import Decimal

import pytest
import time_machine
from django.utils import timezone

from orgs.models import MemberUsage
from orgs.services import org_member_usage_set
from tests.factories import MembershipFactory, OrganizationFactory, UserFactory
from usage import services
from usage.errors import HoldBudgetExceeded
from usage.models import CreditAccount, GrantSource, Hold, HoldStatus, LedgerEntry
from usage.services import UsageInput

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


def figures(org):
    account = CreditAccount.objects.get(org=org)
    return account.balance_micros, account.held_micros, account.available_micros


def record(org, key, hold):
    return services.usage_record(org=org, event=UsageInput(key, "action.medium", Decimal(1), hold_id=hold.pk))


def fresh(hold):
    hold.refresh_from_db()
    return hold


def reconciled(org):
    assert services.ledger_reconcile(org_ids=[org.pk]) == []


def test_a_child_is_carved_out_of_its_parent_and_reserves_nothing_more(api, org):
    fund(org, 100)
    parent = post(api, "/api/v1/holds", {"idempotency_key": "run", "credits": "50"}).json()
    response = post(api, "/api/v1/holds", {"idempotency_key": "run:sub", "credits": "20",
                                           "parent_hold_id": parent["id"]})
    assert response.status_code == 201, response.content
    child = response.json()
    assert (child["parent_hold_id"], child["depth"], child["credits"], child["left"]) == (parent["id"], 1, "20", "20")
    assert figures(org) == (100 * C, 50 * C, 50 * C)
    parent_row = Hold.objects.get(pk=parent["id"])
    assert (parent_row.used_micros, parent_row.left_micros) == (20 * C, 30 * C)
    assert Hold.objects.get(pk=child["id"]).expires_at <= parent_row.expires_at
    # a replay answers the child as made; another amount is a conflict
    again = post(api, "/api/v1/holds", {"idempotency_key": "run:sub", "credits": "20", "parent_hold_id": parent["id"]})
    assert again.status_code == 201 and again.json()["id"] == child["id"]
    error(post(api, "/api/v1/holds", {"idempotency_key": "run:sub", "credits": "21", "parent_hold_id": parent["id"]}),
          409, "idempotency_key_reused")
    reconciled(org)


def test_a_child_needs_an_open_parent_of_the_org_with_enough_left(api, org, other_org):
    fund(org, 100)
    fund(other_org, 100)
    parent = services.hold_create(org=org, amount_micros=10 * C)
    body = error(post(api, "/api/v1/holds", {"idempotency_key": "a", "credits": "11", "parent_hold_id": parent.pk}),
                 409, "parent_hold_insufficient")
    assert (body["left"], body["required"]) == ("10", "11")
    theirs = services.hold_create(org=other_org, amount_micros=10 * C)
    error(post(api, "/api/v1/holds", {"idempotency_key": "b", "credits": "1", "parent_hold_id": theirs.pk}),
          404, "hold_not_found")
    services.hold_release(org=org, hold_id=parent.pk)
    error(post(api, "/api/v1/holds", {"idempotency_key": "c", "credits": "1", "parent_hold_id": parent.pk}),
          409, "hold_not_open")
    assert Hold.objects.filter(parent__isnull=False).count() == 0
    assert figures(org) == (100 * C, 0, 100 * C)


def test_depth_and_open_children_are_limited(api, org, settings):
    settings.HOLD_MAX_DEPTH = 2
    settings.HOLD_MAX_OPEN_CHILDREN = 2
    fund(org, 100)
    root = services.hold_create(org=org, amount_micros=50 * C)
    one = services.hold_create(org=org, amount_micros=10 * C, parent_hold_id=root.pk)
    two = services.hold_create(org=org, amount_micros=5 * C, parent_hold_id=one.pk)
    assert two.depth == 2
    body = error(post(api, "/api/v1/holds", {"idempotency_key": "deep", "credits": "1", "parent_hold_id": two.pk}),
                 409, "hold_depth_exceeded")
    assert body["max_depth"] == 2
    services.hold_create(org=org, amount_micros=C, parent_hold_id=root.pk)
    error(post(api, "/api/v1/holds", {"idempotency_key": "wide", "credits": "1", "parent_hold_id": root.pk}),
          409, "hold_children_exceeded")
    services.hold_release(org=org, hold_id=one.pk)  # an open child fewer: room again
    assert post(api, "/api/v1/holds", {"idempotency_key": "wide", "credits": "1",
                                       "parent_hold_id": root.pk}).status_code == 201
    reconciled(org)


def test_usage_against_a_child_draws_on_its_parent_and_never_past_it(org):
    fund(org, 100)
    parent = services.hold_create(org=org, amount_micros=10 * C)
    child = services.hold_create(org=org, amount_micros=4 * C, parent_hold_id=parent.pk)
    record(org, "a", child)
    record(org, "b", child)  # 1.5 of the child's, then 1 of the parent's
    assert (fresh(child).left_micros, fresh(parent).left_micros) == (0, 5 * C)
    record(org, "c", child)
    record(org, "d", child)  # the parent's last 2.5
    with pytest.raises(HoldBudgetExceeded) as refused:
        record(org, "e", child)
    assert refused.value.status == 402 and refused.value.details["required"] == "2.5"
    # the balance could pay, but a child spends only what it was handed
    assert figures(org) == (90 * C, 0, 90 * C)
    assert (fresh(child).recorded_micros, fresh(parent).recorded_micros) == (10 * C, 0)
    reconciled(org)


def test_a_childs_capture_frees_the_rest_to_its_parent_and_counts_there(org):
    fund(org, 100)
    parent = services.hold_create(org=org, amount_micros=10 * C)
    child = services.hold_create(org=org, amount_micros=6 * C, parent_hold_id=parent.pk)
    record(org, "a", child)
    hold, entry = services.hold_capture(org=org, hold_id=child.pk)
    assert (hold.status, hold.captured_micros, entry) == (HoldStatus.CAPTURED, MEDIUM, None)
    parent = fresh(parent)
    assert (parent.left_micros, parent.recorded_micros) == (10 * C - MEDIUM, MEDIUM)
    assert figures(org) == (100 * C - MEDIUM, 10 * C - MEDIUM, 90 * C)
    hold, _entry = services.hold_capture(org=org, hold_id=parent.pk)
    assert hold.captured_micros == MEDIUM
    assert figures(org) == (100 * C - MEDIUM, 0, 100 * C - MEDIUM)
    reconciled(org)


def test_a_childs_capture_past_its_own_takes_from_its_parent_and_no_further(org):
    fund(org, 100)
    parent = services.hold_create(org=org, amount_micros=10 * C)
    child = services.hold_create(org=org, amount_micros=4 * C, parent_hold_id=parent.pk)
    with pytest.raises(HoldBudgetExceeded):
        services.hold_capture(org=org, hold_id=child.pk, amount_micros=11 * C)
    assert fresh(child).status == HoldStatus.OPEN and fresh(parent).used_micros == 4 * C
    hold, entry = services.hold_capture(org=org, hold_id=child.pk, amount_micros=7 * C)
    assert entry.amount_micros == -7 * C
    assert fresh(parent).left_micros == 3 * C and fresh(parent).recorded_micros == 7 * C
    assert figures(org) == (93 * C, 3 * C, 90 * C)
    reconciled(org)


def test_closing_a_parent_settles_its_open_children_first(org):
    fund(org, 100)
    root = services.hold_create(org=org, amount_micros=30 * C)
    child = services.hold_create(org=org, amount_micros=10 * C, parent_hold_id=root.pk)
    grandchild = services.hold_create(org=org, amount_micros=5 * C, parent_hold_id=child.pk)
    idle = services.hold_create(org=org, amount_micros=5 * C, parent_hold_id=root.pk)
    record(org, "a", grandchild)
    record(org, "b", child)
    record(org, "c", root)
    hold, entry = services.hold_capture(org=org, hold_id=root.pk)
    assert entry is None and hold.captured_micros == 3 * MEDIUM
    assert [(h.status, h.captured_micros) for h in (fresh(child), fresh(grandchild), fresh(idle))] == [
        (HoldStatus.CAPTURED, 2 * MEDIUM), (HoldStatus.CAPTURED, MEDIUM), (HoldStatus.CAPTURED, 0)]
    assert figures(org) == (100 * C - 3 * MEDIUM, 0, 100 * C - 3 * MEDIUM)
    assert not LedgerEntry.objects.filter(hold__in=[root, child, grandchild, idle]).exclude(
        amount_micros=-MEDIUM).exists()
    reconciled(org)


def test_releasing_a_parent_settles_its_children_and_keeps_what_they_recorded(org):
    fund(org, 100)
    root = services.hold_create(org=org, amount_micros=30 * C)
    child = services.hold_create(org=org, amount_micros=10 * C, parent_hold_id=root.pk)
    record(org, "a", child)
    assert services.hold_release(org=org, hold_id=root.pk).status == HoldStatus.RELEASED
    assert (fresh(child).status, fresh(child).captured_micros) == (HoldStatus.CAPTURED, MEDIUM)
    assert figures(org) == (100 * C - MEDIUM, 0, 100 * C - MEDIUM)
    reconciled(org)


def test_an_expired_child_gives_its_reservation_back_to_its_parent(org):
    fund(org, 100)
    root = services.hold_create(org=org, amount_micros=30 * C, expires_in=timedelta(hours=1))
    child = services.hold_create(org=org, amount_micros=10 * C, parent_hold_id=root.pk,
                                 expires_in=timedelta(minutes=1))
    record(org, "a", child)
    with time_machine.travel(timezone.now() + timedelta(minutes=2)):
        assert services.holds_expire() == 1
    assert fresh(child).status == HoldStatus.EXPIRED
    assert (fresh(root).left_micros, fresh(root).recorded_micros) == (30 * C - MEDIUM, MEDIUM)
    assert figures(org) == (100 * C - MEDIUM, 30 * C - MEDIUM, 70 * C)
    with time_machine.travel(timezone.now() + timedelta(hours=2)):
        assert services.holds_expire() == 1
    assert figures(org) == (100 * C - MEDIUM, 0, 100 * C - MEDIUM)
    reconciled(org)


def test_a_child_is_for_its_parents_member(api, org, owner, member):
    fund(org, 100)
    parent = services.hold_create(org=org, amount_micros=10 * C, member=member)
    error(post(api, "/api/v1/holds", {"idempotency_key": "x", "credits": "1", "parent_hold_id": parent.pk,
                                      "member": owner.email}), 409, "hold_member_mismatch")
    child = post(api, "/api/v1/holds", {"idempotency_key": "y", "credits": "1", "parent_hold_id": parent.pk}).json()
    assert child["member"] == member.email


def test_capturing_a_parent_with_events_adds_them_to_what_its_children_recorded(org):
    fund(org, 100)
    parent = services.hold_create(org=org, amount_micros=10 * C)
    child = services.hold_create(org=org, amount_micros=5 * C, parent_hold_id=parent.pk)
    record(org, "a", child)
    hold, _events = services.hold_capture_events(
        org=org, hold_id=parent.pk, events=[UsageInput("b", "action.medium", Decimal(1))])
    assert hold.captured_micros == 2 * MEDIUM  # the child's usage, then the event, both debited once
    assert figures(org) == (100 * C - 2 * MEDIUM, 0, 100 * C - 2 * MEDIUM)
    reconciled(org)


def test_in_personal_mode_a_child_reserves_from_the_members_hold(api, org):
    user = UserFactory(email="ada@example.test")
    personal = OrganizationFactory(name="Ada", slug="ada", is_personal=True)
    MembershipFactory(org=personal, user=user, role="owner")
    MembershipFactory(org=org, user=user, role="member")
    fund(personal, 10)
    org_member_usage_set(org=org, member_usage=MemberUsage.PERSONAL)
    org.refresh_from_db()
    parent = post(api, "/api/v1/holds", {"idempotency_key": "p", "credits": "8", "member": user.email}).json()
    child = post(api, "/api/v1/holds", {"idempotency_key": "c", "credits": "3", "parent_hold_id": parent["id"]})
    assert child.status_code == 201, child.content
    assert (child.json()["paid_by"], child.json()["member"]) == ("member", user.email)
    recorded = post(api, "/api/v1/usage/events", {"idempotency_key": "e", "meter": "action.medium", "quantity": 1,
                                                  "hold_id": child.json()["id"]})
    assert recorded.status_code == 201 and recorded.json()["paid_by"] == "member"
    assert figures(personal) == (10 * C - MEDIUM, 8 * C - MEDIUM, 2 * C)
    assert post(api, f"/api/v1/holds/{parent['id']}/capture", {}).json()["hold"]["captured"] == "2.5"
    assert figures(personal) == (10 * C - MEDIUM, 0, 10 * C - MEDIUM)
    assert services.ledger_reconcile(org_ids=[org.pk, personal.pk]) == []
