from datetime import timedelta

import pytest
from django.utils import timezone

from usage import selectors, services
from usage.models import GrantSource, LedgerEntry

pytestmark = pytest.mark.django_db

C = 1_000_000


def test_a_cursor_names_its_entry_exactly(org):
    entry = services.credits_grant(org=org, amount_micros=5 * C, source=GrantSource.PURCHASE)
    moment, pk = selectors.cursor_parse(selectors.cursor_for(entry))
    assert (moment, pk) == (entry.created_at, entry.pk)


@pytest.mark.parametrize("garbage", ["", "!!", "bm90LWEtY3Vyc29y", "MjAyNi0wMS0wMVQwMDowMDowMHwx", "x" * 500])
def test_anything_else_is_not_a_cursor(garbage):
    # the last-but-one is "2026-01-01T00:00:00|1": no time zone, so not one of ours
    assert selectors.cursor_parse(garbage) is None


def test_filters_combine_and_days_include_both_ends(org, member):
    services.credits_grant(org=org, amount_micros=50 * C, source=GrantSource.PURCHASE)
    services.credits_debit(org=org, amount_micros=C, idempotency_key="a", member=member)
    services.credits_debit(org=org, amount_micros=C, idempotency_key="b")
    today = timezone.localdate()
    account_id = org.credit_account.pk
    only = selectors.HistoryFilters(kind="usage", member_id=member.pk, since=today, until=today)
    assert [e.idempotency_key for e in selectors.history_entries(account_id=account_id, filters=only)] == ["a"]
    tomorrow = selectors.HistoryFilters(since=today + timedelta(days=1))
    assert not selectors.history_entries(account_id=account_id, filters=tomorrow).exists()


def test_an_unknown_kind_is_refused():
    with pytest.raises(ValueError):
        selectors.HistoryFilters(kind="bogus")


def test_sendable_is_purchased_credits_in_live_grants_less_holds(org):
    services.credits_grant(org=org, amount_micros=30 * C, source=GrantSource.PURCHASE)
    services.credits_grant(org=org, amount_micros=20 * C, source=GrantSource.AUTO_TOPUP)
    services.credits_grant(org=org, amount_micros=99 * C, source=GrantSource.TRIAL)
    services.credits_grant(org=org, amount_micros=7 * C, source=GrantSource.TRANSFER_IN)
    account = selectors.account_for(org.pk)
    assert selectors.sendable_micros(account=account, grants=selectors.live_grants(account=account)) == 50 * C
    services.hold_create(org=org, amount_micros=130 * C)
    account = selectors.account_for(org.pk)  # 156 balance, 130 held: 26 available
    assert selectors.sendable_micros(account=account, grants=selectors.live_grants(account=account)) == 26 * C


def test_reads_never_create_an_account(db):
    from tests.factories import OrganizationFactory

    lonely = OrganizationFactory()
    account = selectors.account_for(lonely.pk)
    assert account.pk is None and account.available_micros == 0
    assert selectors.live_grants(account=account) == []
    assert not LedgerEntry.objects.exists()
