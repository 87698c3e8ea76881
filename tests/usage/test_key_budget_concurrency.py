"""Real threads on PostgreSQL: a key's monthly limit never overruns, whatever mix
of single events, batches, holds and captures arrives at once."""

from decimal import Decimal

import pytest
from django.db.models import Sum
from django.utils import timezone

from accounts.models import OrgAPIKey
from billing_project.errors import TollgateError
from tests.factories import OrganizationFactory, api_key_for
from tests.usage.test_concurrency import run_concurrently
from usage import services
from usage.errors import KeyLimitReached
from usage.models import GrantSource, Hold, KeySpend, UsageEvent
from usage.services import UsageInput
from usage.services.writer import month_start

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("debit_path")]

C = 1_000_000
MEDIUM = 2_500_000


def limited(org, limit_micros):
    key, _secret = api_key_for(org, name="agent")
    OrgAPIKey.objects.filter(pk=key.pk).update(monthly_limit_micros=limit_micros)
    return OrgAPIKey.objects.get(pk=key.pk)


def spent(key) -> int:
    return KeySpend.objects.get(api_key_prefix=key.prefix, month=month_start(timezone.now())).spent_micros


def test_concurrent_events_never_take_a_key_past_its_limit():
    org = OrganizationFactory()
    services.credits_grant(org=org, amount_micros=1000 * C, source=GrantSource.PURCHASE)
    key = limited(org, 10 * C)  # four medium actions

    def work(i):
        event = UsageInput(idempotency_key=f"e{i}", meter="action.medium", quantity=Decimal(1))
        return services.usage_record(org=org, event=event, actor=key)

    results = run_concurrently(work, count=16)

    assert sum(not isinstance(r, TollgateError) for r in results) == 4, results
    assert all(isinstance(r, KeyLimitReached) for r in results if isinstance(r, Exception)), results
    charged = UsageEvent.objects.filter(api_key_prefix=key.prefix).aggregate(total=Sum("credits_micros"))["total"]
    assert charged == spent(key) == 10 * C
    assert services.ledger_reconcile(org_ids=[org.pk]) == []


def test_concurrent_batches_holds_and_captures_never_take_a_key_past_its_limit():
    org = OrganizationFactory()
    services.credits_grant(org=org, amount_micros=1000 * C, source=GrantSource.PURCHASE)
    key = limited(org, 23 * C)

    def work(i):
        kind = i % 3
        if kind == 0:
            return services.usage_record_batch(org=org, actor=key, events=[
                UsageInput(idempotency_key=f"b{i}:{n}", meter="action.medium", quantity=Decimal(1)) for n in range(2)])
        if kind == 1:
            return services.hold_create(org=org, amount_micros=3 * C, idempotency_key=f"h{i}", actor=key)
        hold = services.hold_create(org=org, amount_micros=C, idempotency_key=f"c{i}", actor=key)
        return services.hold_capture(org=org, hold_id=hold.pk, amount_micros=4 * C, actor=key)

    results = run_concurrently(work, count=15)

    # 60 credits asked for in all: the limit refuses some, and only with key_limit_reached
    refusals = [r for r in results if isinstance(r, Exception)]
    refusals += [item.error for r in results if isinstance(r, list) for item in r if item.error is not None]
    assert refusals and all(isinstance(r, KeyLimitReached) for r in refusals), refusals
    held = Hold.objects.filter(account__org=org, status="open", api_key_prefix=key.prefix).aggregate(
        total=Sum("amount_micros"))["total"] or 0
    committed = spent(key) + held
    assert committed <= 23 * C, (spent(key), held)
    debited = -sum(e.amount_micros for e in org.credit_account.entries.filter(kind="usage"))
    assert debited == spent(key)
    assert services.ledger_reconcile(org_ids=[org.pk]) == []
