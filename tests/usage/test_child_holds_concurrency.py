"""Real threads, real PostgreSQL, real commits: children of one hold carving,
recording and capturing at once never spend past their parent. Every write to
a tree of holds takes the account row lock first (usage.services.holds), so
they are serialised there."""

import threading
from decimal import Decimal

import pytest
from django.db import connection

from billing_project.errors import TollgateError
from tests.factories import OrganizationFactory
from usage import services
from usage.models import CreditAccount, GrantSource, Hold, HoldStatus, UsageEvent
from usage.services import UsageInput

pytestmark = pytest.mark.django_db(transaction=True)

C = 1_000_000
MEDIUM = 2_500_000


def run_concurrently(work, count: int) -> list:
    barrier = threading.Barrier(count)
    results: list = [None] * count

    def runner(i: int) -> None:
        try:
            barrier.wait()
            results[i] = work(i)
        except Exception as error:  # noqa: BLE001 - the test inspects it
            results[i] = error
        finally:
            connection.close()

    threads = [threading.Thread(target=runner, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    return results


def test_concurrent_children_never_carve_more_than_the_parent_has():
    org = OrganizationFactory()
    services.credits_grant(org=org, amount_micros=100 * C, source=GrantSource.PURCHASE)
    parent = services.hold_create(org=org, amount_micros=10 * C)

    results = run_concurrently(
        lambda i: services.hold_create(org=org, amount_micros=C, idempotency_key=f"c{i}", parent_hold_id=parent.pk),
        count=16,
    )
    made = [r for r in results if isinstance(r, Hold)]
    assert len(made) == 10, results
    assert all(isinstance(r, TollgateError) and r.code == "parent_hold_insufficient"
               for r in results if not isinstance(r, Hold))
    parent.refresh_from_db()
    assert parent.left_micros == 0
    account = CreditAccount.objects.get(org=org)
    assert (account.held_micros, account.available_micros) == (10 * C, 90 * C)
    assert services.ledger_reconcile(org_ids=[org.pk]) == []


def test_children_recording_and_capturing_at_once_never_exceed_their_parent():
    org = OrganizationFactory()
    services.credits_grant(org=org, amount_micros=100 * C, source=GrantSource.PURCHASE)
    parent = services.hold_create(org=org, amount_micros=20 * C)
    children = [services.hold_create(org=org, amount_micros=C, parent_hold_id=parent.pk) for _ in range(8)]

    def work(i):
        child = children[i % len(children)]
        outcomes = []
        for n in range(3):  # 7.5 credits each, 60 asked for in all, from a parent of 20
            try:
                services.usage_record(org=org, event=UsageInput(f"t{i}:{n}", "action.medium", Decimal(1),
                                                                 hold_id=child.pk))
                outcomes.append("recorded")
            except TollgateError as error:
                outcomes.append(error.code)
        try:
            if i < len(children):  # one thread per child captures it, asking for 2 more
                services.hold_capture(org=org, hold_id=child.pk,
                                      amount_micros=Hold.objects.get(pk=child.pk).recorded_micros + 2 * C)
                outcomes.append("captured")
        except TollgateError as error:
            outcomes.append(error.code)
        return outcomes

    results = run_concurrently(work, count=16)
    assert all(isinstance(r, list) for r in results), results
    codes = {code for r in results for code in r} - {"recorded", "captured"}
    assert codes <= {"hold_budget_exceeded", "hold_not_open", "capture_below_recorded"}, codes
    assert "hold_budget_exceeded" in codes  # the parent ran out, and said so

    parent.refresh_from_db()
    assert 0 <= parent.used_micros <= parent.amount_micros
    hold, _entry = services.hold_capture(org=org, hold_id=parent.pk)
    spent = 100 * C - CreditAccount.objects.get(org=org).balance_micros
    assert spent == hold.captured_micros <= 20 * C
    assert sum(e.credits_micros for e in UsageEvent.objects.filter(account__org=org)) <= 20 * C
    assert not Hold.objects.filter(status=HoldStatus.OPEN).exists()
    assert CreditAccount.objects.get(org=org).held_micros == 0
    assert services.ledger_reconcile(org_ids=[org.pk]) == []
