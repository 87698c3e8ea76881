"""Real threads on PostgreSQL: many requests with one spending token never take
it past its ceiling, whatever mix of single events and batches arrives at once."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.db.models import Sum

from billing_project.errors import TollgateError
from tests.factories import OrganizationFactory, api_key_for
from tests.usage.test_concurrency import run_concurrently
from usage import services
from usage.errors import TokenCeilingReached
from usage.models import GrantSource, SpendingToken, UsageEvent
from usage.services import UsageInput

pytestmark = pytest.mark.django_db(transaction=True)

C = 1_000_000
MEDIUM = 2_500_000


def funded_token(ceiling_micros):
    org = OrganizationFactory()
    services.credits_grant(org=org, amount_micros=1000 * C, source=GrantSource.PURCHASE)
    key, _secret = api_key_for(org, name="agent")
    hold = services.hold_create(org=org, amount_micros=50 * C, expires_in=timedelta(hours=1), actor=key)
    token, _raw = services.spending_token_create(org=org, hold_id=hold.pk, ceiling_micros=ceiling_micros, actor=key)
    return org, key, token


def charged_with(token) -> int:
    return UsageEvent.objects.filter(spending_token=token).aggregate(total=Sum("credits_micros"))["total"] or 0


def test_concurrent_events_never_take_a_token_past_its_ceiling():
    org, key, token = funded_token(10 * C)  # four medium actions

    def work(i):
        event = UsageInput(idempotency_key=f"e{i}", meter="action.medium", quantity=Decimal(1))
        return services.usage_record(org=org, event=event, actor=key, token=token)

    results = run_concurrently(work, count=16)

    assert sum(not isinstance(r, TollgateError) for r in results) == 4, results
    assert all(isinstance(r, TokenCeilingReached) for r in results if isinstance(r, Exception)), results
    assert charged_with(token) == SpendingToken.objects.get(pk=token.pk).spent_micros == 10 * C
    assert services.ledger_reconcile(org_ids=[org.pk]) == []


def test_concurrent_batches_and_events_never_take_a_token_past_its_ceiling():
    org, key, token = funded_token(23 * C)

    def work(i):
        if i % 2:
            return services.usage_record_batch(org=org, actor=key, token=token, events=[
                UsageInput(idempotency_key=f"b{i}:{n}", meter="action.medium", quantity=Decimal(1)) for n in range(3)])
        return services.usage_record(org=org, actor=key, token=token, event=UsageInput(
            idempotency_key=f"e{i}", meter="action.medium", quantity=Decimal(1)))

    results = run_concurrently(work, count=14)

    refusals = [r for r in results if isinstance(r, Exception)]
    refusals += [item.error for r in results if isinstance(r, list) for item in r if item.error is not None]
    assert refusals and all(isinstance(r, TokenCeilingReached) for r in refusals), refusals
    spent = SpendingToken.objects.get(pk=token.pk).spent_micros
    assert spent == charged_with(token) <= 23 * C
    assert spent == 9 * MEDIUM  # as many whole actions as fit: 22.5 of 23
    assert services.ledger_reconcile(org_ids=[org.pk]) == []


def test_concurrent_events_on_a_hold_and_its_child_never_take_a_token_past_its_ceiling():
    org, key, token = funded_token(12 * C)
    child = services.hold_create(org=org, amount_micros=10 * C, parent_hold_id=token.hold_id, actor=key)

    def work(i):
        event = UsageInput(idempotency_key=f"e{i}", meter="action.medium", quantity=Decimal(1),
                           hold_id=child.pk if i % 2 else None)
        return services.usage_record(org=org, event=event, actor=key, token=token)

    results = run_concurrently(work, count=12)

    assert sum(not isinstance(r, TollgateError) for r in results) == 4, results  # 10 of 12 credits
    assert all(isinstance(r, TokenCeilingReached) for r in results if isinstance(r, Exception)), results
    assert charged_with(token) == SpendingToken.objects.get(pk=token.pk).spent_micros == 4 * MEDIUM
    assert services.ledger_reconcile(org_ids=[org.pk]) == []
