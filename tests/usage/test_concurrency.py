"""Real threads, real PostgreSQL, real commits: the account lock is what keeps
concurrent debits from overdrawing an account or applying a key twice."""

import threading
from decimal import Decimal

import pytest
from django.db import connection

from billing_project.errors import TollgateError
from tests.factories import MembershipFactory, OrganizationFactory, UserFactory
from usage import services
from usage.errors import InsufficientCredits, SpendLimitReached
from usage.models import (
    CreditAccount,
    GrantSource,
    LedgerEntry,
    MemberSpend,
    UsageEvent,
)
from usage.services import UsageInput

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("debit_path")]

C = 1_000_000
THREADS = 12


def run_concurrently(work, count: int = THREADS) -> list:
    """Start `count` threads that call work(i) at the same moment; collect results or errors."""
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
        t.join(timeout=60)
    return results


def test_debit_never_overdraws_under_concurrency():
    org = OrganizationFactory()
    services.credits_grant(org=org, amount_micros=7 * C, source=GrantSource.PURCHASE)

    results = run_concurrently(
        lambda i: services.credits_debit(org=org, amount_micros=C, idempotency_key=f"d{i}"), count=20
    )

    succeeded = [r for r in results if isinstance(r, LedgerEntry)]
    refused = [r for r in results if isinstance(r, InsufficientCredits)]
    assert len(succeeded) == 7 and len(refused) == 13, results
    assert CreditAccount.objects.get(org=org).balance_micros == 0
    assert services.ledger_reconcile(org_ids=[org.pk]) == []


def test_concurrent_usage_events_never_overdraw_and_exactly_the_affordable_number_succeed():
    org = OrganizationFactory()
    services.credits_grant(org=org, amount_micros=10 * C, source=GrantSource.PURCHASE)  # four medium actions

    def work(i):
        event = UsageInput(idempotency_key=f"e{i}", meter="action.medium", quantity=Decimal(1))
        return services.usage_record(org=org, event=event)

    results = run_concurrently(work)
    assert sum(not isinstance(r, TollgateError) for r in results) == 4
    assert all(isinstance(r, InsufficientCredits) for r in results if isinstance(r, TollgateError))
    assert UsageEvent.objects.filter(account__org=org).count() == 4
    assert CreditAccount.objects.get(org=org).balance_micros == 0
    assert services.ledger_reconcile(org_ids=[org.pk]) == []


def test_concurrent_replays_of_one_key_debit_once():
    org = OrganizationFactory()
    services.credits_grant(org=org, amount_micros=100 * C, source=GrantSource.PURCHASE)

    def work(i):
        event = UsageInput(idempotency_key="same", meter="action.xl", quantity=Decimal(1))
        return services.usage_record(org=org, event=event)

    results = run_concurrently(work)
    assert not [r for r in results if isinstance(r, Exception)], results
    assert len({r.event.pk for r in results}) == 1
    assert sum(not r.replayed for r in results) == 1
    assert CreditAccount.objects.get(org=org).balance_micros == 85 * C


def test_concurrent_debit_replays_of_one_key_debit_once():
    org = OrganizationFactory()
    services.credits_grant(org=org, amount_micros=100 * C, source=GrantSource.PURCHASE)
    results = run_concurrently(lambda i: services.credits_debit(org=org, amount_micros=3 * C, idempotency_key="k"))
    assert len({r.pk for r in results}) == 1, results
    assert CreditAccount.objects.get(org=org).balance_micros == 97 * C


def test_a_member_cap_holds_under_concurrency():
    org = OrganizationFactory()
    owner = MembershipFactory(org=org, role="owner").user
    member = MembershipFactory(org=org, user=UserFactory()).user
    services.credits_grant(org=org, amount_micros=100 * C, source=GrantSource.PURCHASE)
    services.member_limit_set(org=org, member=member, monthly_limit_micros=5 * C, actor=owner)

    results = run_concurrently(
        lambda i: services.credits_debit(org=org, amount_micros=C, idempotency_key=f"m{i}", member=member)
    )
    assert sum(isinstance(r, LedgerEntry) for r in results) == 5
    assert sum(isinstance(r, SpendLimitReached) for r in results) == THREADS - 5
    assert MemberSpend.objects.get(member=member).spent_micros == 5 * C


def test_transfers_in_opposite_directions_do_not_deadlock():
    a, b = OrganizationFactory(), OrganizationFactory()
    for org in (a, b):
        services.credits_grant(org=org, amount_micros=50 * C, source=GrantSource.PURCHASE)

    def work(i):
        src, dst = (a, b) if i % 2 else (b, a)
        return services.credits_transfer(from_org=src, to_org=dst, amount_micros=C, idempotency_key=f"t{i}")

    results = run_concurrently(work)
    assert not [r for r in results if isinstance(r, Exception)], results
    total = sum(CreditAccount.objects.filter(org__in=[a, b]).values_list("balance_micros", flat=True))
    assert total == 100 * C
    assert services.ledger_reconcile(org_ids=[a.pk, b.pk]) == []
