"""An API key's monthly limit when the organization's members pay for their own
usage: the routed usage is the key's spend, on the organization's row, and the
limit holds under concurrency across members' personal accounts."""

from decimal import Decimal

import pytest
from django.db.models import Sum
from django.utils import timezone

from accounts.models import OrgAPIKey
from billing_project.errors import TollgateError
from orgs.models import MemberUsage, Organization
from tests.factories import MembershipFactory, OrganizationFactory, UserFactory, api_key_for
from tests.usage.test_concurrency import run_concurrently
from usage import services
from usage.errors import KeyLimitReached
from usage.models import CreditAccount, GrantSource, Hold, KeySpend, UsageEvent
from usage.services import UsageInput
from usage.services.writer import month_start

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("debit_path")]

C = 1_000_000


def setup(limit_micros: int, people: int = 2):
    org = OrganizationFactory()
    Organization.objects.filter(pk=org.pk).update(member_usage=MemberUsage.PERSONAL)
    org.refresh_from_db()
    members = []
    for _ in range(people):
        user = UserFactory()
        personal = OrganizationFactory(is_personal=True)
        MembershipFactory(org=personal, user=user, role="owner")
        MembershipFactory(org=org, user=user)
        services.credits_grant(org=personal, amount_micros=100 * C, source=GrantSource.PURCHASE)
        members.append((user, personal))
    key, _secret = api_key_for(org, name="agent")
    OrgAPIKey.objects.filter(pk=key.pk).update(monthly_limit_micros=limit_micros)
    return org, members, OrgAPIKey.objects.get(pk=key.pk)


def key_spent(org, key) -> int:
    return KeySpend.objects.get(account__org=org, api_key_prefix=key.prefix, month=month_start(timezone.now())).spent_micros


def test_routed_usage_counts_on_the_orgs_key_row_and_is_refused_past_the_limit():
    org, [(ada, ada_personal), (bo, _)], key = setup(3 * C)
    services.usage_record(org=org, event=UsageInput("a", "action.small", Decimal(2), member=ada), actor=key)
    with pytest.raises(KeyLimitReached):
        services.usage_record(org=org, event=UsageInput("b", "action.small", Decimal(2), member=bo), actor=key)
    hold = services.hold_create(org=org, amount_micros=C, member=bo, actor=key)
    assert key_spent(org, key) == 2 * C
    assert not KeySpend.objects.filter(account__org=ada_personal).exists()
    with pytest.raises(KeyLimitReached):
        services.hold_capture(org=org, hold_id=hold.pk, amount_micros=2 * C, actor=key)
    services.hold_capture(org=org, hold_id=hold.pk, amount_micros=C, actor=key)
    assert key_spent(org, key) == 3 * C


def test_a_keys_limit_never_overruns_with_concurrent_routed_batches_holds_and_events():
    org, members, key = setup(9 * C, people=3)

    def work(i):
        user = members[i % 3][0]
        if i % 3 == 0:
            return services.usage_record(org=org, event=UsageInput(f"e{i}", "action.small", Decimal(1), member=user),
                                         actor=key)
        if i % 3 == 1:
            other = members[(i + 1) % 3][0]
            return services.usage_record_batch(org=org, actor=key, events=[
                UsageInput(f"b{i}a", "action.small", Decimal(1), member=user),
                UsageInput(f"b{i}b", "action.small", Decimal(1), member=other),
            ])
        return services.hold_create(org=org, amount_micros=C, member=user, actor=key)

    results = run_concurrently(work, count=24)
    assert not [r for r in results if isinstance(r, TollgateError) and not isinstance(r, KeyLimitReached)], results
    recorded = UsageEvent.objects.filter(for_org=org).aggregate(t=Sum("credits_micros"))["t"] or 0
    held = Hold.objects.filter(for_org=org, status="open").aggregate(t=Sum("amount_micros"))["t"] or 0
    assert recorded == key_spent(org, key) and recorded + held == 9 * C
    assert sum(CreditAccount.objects.get(org=p).balance_micros for _u, p in members) == 300 * C - recorded
    assert services.ledger_reconcile(org_ids=[org.pk, *(p.pk for _u, p in members)]) == []
