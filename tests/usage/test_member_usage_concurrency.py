"""Real threads on PostgreSQL: usage that members pay for themselves
(`member_usage: personal`) never overruns the organization's cap for them nor
overdraws their personal balance, and concurrent batches never deadlock."""

from decimal import Decimal

import pytest
from django.db.models import Sum

from billing_project.errors import TollgateError
from orgs.models import MemberUsage
from orgs.services import org_member_usage_set
from tests.factories import MembershipFactory, OrganizationFactory, UserFactory
from tests.usage.test_concurrency import THREADS, run_concurrently
from usage import services
from usage.errors import InsufficientCredits, SpendLimitReached
from usage.models import CreditAccount, GrantSource, Hold, MemberSpend, UsageEvent
from usage.services import UsageInput

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("debit_path")]

C = 1_000_000


def community(name: str):
    org = OrganizationFactory(name=name)
    org_member_usage_set(org=org, member_usage=MemberUsage.PERSONAL)
    org.refresh_from_db()
    return org


def person(*orgs, credits: int):
    user = UserFactory()
    personal = OrganizationFactory(is_personal=True)
    MembershipFactory(org=personal, user=user, role="owner")
    for org in orgs:
        MembershipFactory(org=org, user=user)
    services.credits_grant(org=personal, amount_micros=credits * C, source=GrantSource.PURCHASE)
    return user, personal


def event(key: str, member, meter: str = "action.small") -> UsageInput:
    return UsageInput(idempotency_key=key, meter=meter, quantity=Decimal(1), member=member)


def test_a_members_cap_for_the_org_never_overruns_with_concurrent_events_batches_and_holds():
    org = community("Acme")
    user, personal = person(org, credits=100)
    services.member_limit_set(org=org, member=user, monthly_limit_micros=7 * C)

    def work(i):
        if i % 3 == 0:
            return services.usage_record(org=org, event=event(f"e{i}", user))  # 1 credit
        if i % 3 == 1:
            return services.usage_record_batch(org=org, events=[event(f"b{i}a", user), event(f"b{i}b", user)])
        return services.hold_create(org=org, amount_micros=C, member=user, idempotency_key=f"h{i}")

    results = run_concurrently(work, count=THREADS * 2)
    assert not [r for r in results if isinstance(r, TollgateError) and not isinstance(r, SpendLimitReached)], results
    spent = MemberSpend.objects.get(account__org=org, member=user).spent_micros
    held = Hold.objects.filter(for_org=org, status="open").aggregate(t=Sum("amount_micros"))["t"] or 0
    recorded = UsageEvent.objects.filter(for_org=org).aggregate(t=Sum("credits_micros"))["t"] or 0
    assert spent == recorded and spent + held == 7 * C  # every credit of the cap used, none past it
    assert any(isinstance(r, SpendLimitReached) for r in results) or any(
        isinstance(r, list) and any(item.status == "refused" for item in r) for r in results
    )
    assert CreditAccount.objects.get(org=personal).balance_micros == 100 * C - recorded
    assert services.ledger_reconcile(org_ids=[org.pk, personal.pk]) == []


def test_one_personal_balance_paying_for_two_orgs_and_itself_is_never_overdrawn():
    acme, globex = community("Acme"), community("Globex")
    user, personal = person(acme, globex, credits=10)

    def work(i):
        org = (acme, globex, personal)[i % 3]
        return services.usage_record(org=org, event=event(f"e{i}", user, meter="action.medium"))  # 2.5

    results = run_concurrently(work)
    assert sum(not isinstance(r, TollgateError) for r in results) == 4
    assert all(isinstance(r, InsufficientCredits) for r in results if isinstance(r, TollgateError))
    assert CreditAccount.objects.get(org=personal).balance_micros == 0
    assert services.ledger_reconcile(org_ids=[acme.pk, globex.pk, personal.pk]) == []


def test_concurrent_batches_naming_members_in_opposite_orders_do_not_deadlock():
    org = community("Acme")
    ada, ada_personal = person(org, credits=100)
    bo, bo_personal = person(org, credits=100)

    def work(i):
        first, second = (ada, bo) if i % 2 else (bo, ada)
        return services.usage_record_batch(org=org, events=[event(f"{i}-1", first), event(f"{i}-2", second)])

    results = run_concurrently(work)
    assert not [r for r in results if isinstance(r, Exception)], results
    assert all(item.status == "recorded" for batch in results for item in batch)
    for personal in (ada_personal, bo_personal):
        assert CreditAccount.objects.get(org=personal).balance_micros == (100 - THREADS) * C
    assert services.ledger_reconcile(org_ids=[org.pk, ada_personal.pk, bo_personal.pk]) == []
