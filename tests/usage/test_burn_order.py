"""The burn order is written once per language: `usage_grants_to_burn` in
usage/sql/ledger_functions.sql and `GrantQuerySet.burn_order` in Python. These
tests prove the two agree on any set of grants, ties included; the state
machine in test_ledger_properties.py proves the two debit paths that use them
write the same ledger."""

from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.factories import OrganizationFactory
from usage.models import CreditAccount, Grant, GrantSource

pytestmark = pytest.mark.django_db

C = 1_000_000

# Few distinct values, so ties on expiry, priority and creation time are common.
grants = st.lists(
    st.tuples(
        st.sampled_from([None, 1, 2, 30]),  # expires in days, or never
        st.sampled_from([10, 50, 90]),  # priority
        st.integers(0, 2),  # created, in minutes after the first
        st.sampled_from([0, 1]),  # credits left (none: not burnable at all)
    ),
    max_size=12,
)


def _in_sql(account: CreditAccount) -> list[int]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT b.id FROM usage_grants_to_burn(%s) WITH ORDINALITY AS b ORDER BY b.ordinality", [account.pk]
        )
        return [row[0] for row in cursor.fetchall()]


def _in_python(account: CreditAccount) -> list[int]:
    return list(Grant.objects.filter(account=account, remaining_micros__gt=0).burn_order().values_list("id", flat=True))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=grants)
def test_sql_and_python_burn_grants_in_the_same_order(db, rows):
    now = timezone.now()
    with transaction.atomic():
        account = CreditAccount.objects.create(org=OrganizationFactory())
        for expires_in, priority, created, left in rows:
            grant = Grant.objects.create(
                account=account, source=GrantSource.PROMO, amount_micros=C, remaining_micros=left * C,
                expires_at=now + timedelta(days=expires_in) if expires_in is not None else None, priority=priority,
            )
            Grant.objects.filter(pk=grant.pk).update(created_at=now + timedelta(minutes=created))

        assert _in_sql(account) == _in_python(account)
        transaction.set_rollback(True)


def test_the_order_is_expiry_first_then_priority_then_age(org):
    now = timezone.now()
    account = CreditAccount.objects.create(org=org)

    def make(expires_in_days, priority):
        return Grant.objects.create(
            account=account, source=GrantSource.PROMO, amount_micros=C, remaining_micros=C, priority=priority,
            expires_at=now + timedelta(days=expires_in_days) if expires_in_days is not None else None,
        ).pk

    never = make(None, 10)
    later_low_priority = make(30, 90)
    later_high_priority = make(30, 10)
    soon = make(1, 90)
    later_high_priority_younger = make(30, 10)

    expected = [soon, later_high_priority, later_high_priority_younger, later_low_priority, never]
    assert _in_sql(account) == expected
    assert _in_python(account) == expected
