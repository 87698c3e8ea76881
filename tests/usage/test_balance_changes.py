"""The balance-change seam: every ledger write hands one BalanceChange to the
registered receivers, after commit, saying which lines it crossed."""

import pytest
from django.db import transaction
from django.test.utils import override_settings

from usage import balance_changes, services
from usage.balance_changes import BalanceChange, Figures, Line
from usage.models import GrantSource

pytestmark = pytest.mark.django_db

C = 1_000_000


@pytest.fixture
def changes():
    """A receiver added the way any app adds one: a function, registered."""
    seen: list[BalanceChange] = []
    balance_changes.receiver_register(seen.append)
    yield seen
    balance_changes.receiver_unregister(seen.append)


def test_a_write_is_announced_once_after_commit_with_its_figures(org, changes, django_capture_on_commit_callbacks):
    services.credits_grant(org=org, amount_micros=10 * C, source=GrantSource.PURCHASE)
    changes.clear()
    with django_capture_on_commit_callbacks() as callbacks:
        services.credits_debit(org=org, amount_micros=4 * C, idempotency_key="u1")
        assert changes == []  # nothing before commit
    for callback in callbacks:
        callback()

    assert changes == [
        BalanceChange(
            org_id=org.pk, before=Figures(10 * C, 0, 0), after=Figures(6 * C, 0, 0),
            low_line_micros=changes[0].low_line_micros, auto_topup_threshold_micros=None, overage_allowed=False,
            write_id=changes[0].write_id,
        )
    ]


def test_each_write_is_named_and_says_what_it_granted(org, changes, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        entry = services.credits_grant(org=org, amount_micros=10 * C, source=GrantSource.PURCHASE)
    with django_capture_on_commit_callbacks(execute=True):
        services.credits_debit(org=org, amount_micros=C, idempotency_key="u1")
    grant, debit = changes
    assert grant.write_id and debit.write_id and grant.write_id != debit.write_id
    assert [(g.grant_id, g.entry_id, g.amount_micros, g.source) for g in grant.granted] == [
        (entry.grant_id, entry.pk, 10 * C, "purchase")
    ]
    assert debit.granted == () and debit.holds_expired == ()


def test_nothing_is_announced_when_the_write_rolls_back(org, changes, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        with transaction.atomic():
            services.credits_grant(org=org, amount_micros=10 * C, source=GrantSource.PURCHASE)
            transaction.set_rollback(True)

    assert changes == []


def test_both_debit_paths_announce_the_same_change(org, changes, debit_path, django_capture_on_commit_callbacks):
    services.credits_grant(org=org, amount_micros=10 * C, source=GrantSource.PURCHASE)
    with django_capture_on_commit_callbacks(execute=True):
        services.credits_debit(org=org, amount_micros=3 * C, idempotency_key="u1")

    assert (changes[-1].before, changes[-1].after) == (Figures(10 * C, 0, 0), Figures(7 * C, 0, 0))


def test_holds_are_announced_as_they_reserve_and_free_credits(org, changes, django_capture_on_commit_callbacks):
    services.credits_grant(org=org, amount_micros=10 * C, source=GrantSource.PURCHASE)
    with django_capture_on_commit_callbacks(execute=True):
        hold = services.hold_create(org=org, amount_micros=4 * C)
        services.hold_release(org=org, hold_id=hold.pk)

    reserve, release = changes[-2:]
    assert (reserve.before.available_micros, reserve.after.available_micros) == (10 * C, 6 * C)
    assert (release.after.held_micros, release.after.available_micros) == (0, 10 * C)


def test_a_transfer_is_announced_for_both_organizations(org, other_org, changes, django_capture_on_commit_callbacks):
    services.credits_grant(org=org, amount_micros=10 * C, source=GrantSource.PURCHASE)
    with django_capture_on_commit_callbacks(execute=True):
        services.credits_transfer(from_org=org, to_org=other_org, amount_micros=4 * C, idempotency_key="t1")

    assert {(c.org_id, c.after.balance_micros - c.before.balance_micros) for c in changes[-2:]} == {
        (org.pk, -4 * C), (other_org.pk, 4 * C),
    }


@override_settings(LOW_BALANCE_CREDITS=5)
def test_it_names_the_lines_crossed_going_down_and_back_up(org, changes, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        services.credits_grant(org=org, amount_micros=10 * C, source=GrantSource.PURCHASE)
        services.credits_debit(org=org, amount_micros=6 * C, idempotency_key="below-low")
        services.credits_debit(org=org, amount_micros=4 * C, idempotency_key="to-zero")
        services.credits_grant(org=org, amount_micros=3 * C, source=GrantSource.PROMO)
        services.credits_grant(org=org, amount_micros=3 * C, source=GrantSource.PROMO)

    assert [c.crossed for c in changes] == [
        {Line.ABOVE_ZERO, Line.ABOVE_LOW},
        {Line.BELOW_LOW},
        {Line.DEPLETED},
        {Line.ABOVE_ZERO},
        {Line.ABOVE_LOW},
    ]


def test_a_receiver_that_fails_neither_undoes_the_write_nor_stops_the_others(org, changes, caplog,
                                                                              django_capture_on_commit_callbacks):
    def broken(change: BalanceChange) -> None:
        raise RuntimeError("receiver down")

    balance_changes.receiver_register(broken)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            services.credits_grant(org=org, amount_micros=10 * C, source=GrantSource.PURCHASE)
    finally:
        balance_changes.receiver_unregister(broken)

    assert services.ledger_reconcile(org_ids=[org.pk]) == []
    assert len(changes) == 1 and changes[0].after.balance_micros == 10 * C
    assert "receiver down" in caplog.text


def test_the_low_line_is_the_orgs_own_threshold_when_it_has_one(org, changes, django_capture_on_commit_callbacks):
    services.account_set_low_balance_threshold(org=org, threshold_micros=7 * C)
    with django_capture_on_commit_callbacks(execute=True):
        services.credits_grant(org=org, amount_micros=10 * C, source=GrantSource.PURCHASE)
        services.credits_debit(org=org, amount_micros=4 * C, idempotency_key="u1")

    assert changes[-1].low_line_micros == 7 * C
    assert changes[-1].crossed == {Line.BELOW_LOW}
