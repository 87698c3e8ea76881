from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from usage import selectors, services
from usage.models import GrantSource
from usage.services import UsageInput

pytestmark = pytest.mark.django_db

C = 1_000_000


def test_balance_summary_reads_status_and_spendable_grants(org):
    assert selectors.balance_summary(org).status == "depleted"
    services.credits_grant(org=org, amount_micros=500 * C, source=GrantSource.PURCHASE)
    services.credits_grant(org=org, amount_micros=5 * C, source=GrantSource.TRIAL, expires_at=timezone.now() + timedelta(days=1))
    summary = selectors.balance_summary(org)
    assert (summary.balance_micros, summary.status, [g.source for g in summary.grants]) == (505 * C, "ok", ["trial", "purchase"])


def test_usage_series_and_member_spend(org, owner, member):
    services.credits_grant(org=org, amount_micros=100 * C, source=GrantSource.PURCHASE)
    services.member_limit_set(org=org, member=member, monthly_limit_micros=50 * C, actor=owner)
    services.usage_record(org=org, event=UsageInput("a", "action.large", Decimal(1), member=member, workflow_run_id="r"))
    services.hold_create(org=org, amount_micros=3 * C, member=member)
    rows = selectors.usage_series(org, period="month", group_by="member")
    assert [(r.key, r.credits_micros, r.events) for r in rows] == [(member.email, 5 * C, 1)]
    spend = {r.email: r for r in selectors.member_spend(org)}
    assert (spend[member.email].spent_micros, spend[member.email].held_micros, spend[member.email].remaining_micros) == (
        5 * C, 3 * C, 42 * C)
    assert spend[owner.email].limit_micros is None


def test_provider_keys_hide_revoked_ones(org, owner):
    key = services.provider_key_create(org=org, provider="openai", label="prod", last_four="abcd", actor=owner)
    services.provider_key_revoke(org=org, key_id=key.pk, actor=owner)
    assert list(selectors.provider_keys(org)) == []
    assert list(selectors.provider_keys(org, include_revoked=True)) == [key]
