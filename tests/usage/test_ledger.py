from datetime import timedelta

import pytest
import time_machine
from django.db import DatabaseError, transaction
from django.utils import timezone

from billing_project.errors import Conflict, InvalidRequest, NotFound
from orgs.models import AuditEvent
from usage import services
from usage.errors import IdempotencyConflict, InsufficientCredits
from usage.models import CreditAccount, EntryKind, Grant, GrantSource, HoldStatus, LedgerEntry

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("debit_path")]

C = 1_000_000  # one credit in micros


def grant(org, credits, source=GrantSource.PURCHASE, **kw):
    return services.credits_grant(org=org, amount_micros=credits * C, source=source, **kw)


def debit(org, credits, key, **kw):
    return services.credits_debit(org=org, amount_micros=int(credits * C), idempotency_key=key, **kw)


def account(org) -> CreditAccount:
    return CreditAccount.objects.get(org=org)


def assert_reconciled(*orgs):
    assert services.ledger_reconcile(org_ids=[o.pk for o in orgs]) == []


def test_a_grant_then_a_debit_moves_the_balance_through_entries(org):
    grant(org, 100)
    entry = debit(org, 30, "usage:1")

    assert entry.amount_micros == -30 * C
    assert entry.balance_after_micros == 70 * C
    assert account(org).balance_micros == 70 * C
    assert list(LedgerEntry.objects.filter(account__org=org).values_list("kind", flat=True).order_by("id")) == [
        "grant", "usage",
    ]
    assert AuditEvent.objects.filter(org=org, action="credits.usage").exists()
    assert_reconciled(org)


def test_usage_burns_what_expires_first_then_priority_then_oldest(org):
    now = timezone.now()
    paid = grant(org, 10, GrantSource.PURCHASE).grant  # never expires
    plan = grant(org, 10, GrantSource.PLAN_ALLOWANCE, expires_at=now + timedelta(days=30)).grant
    trial = grant(org, 10, GrantSource.TRIAL, expires_at=now + timedelta(days=7)).grant
    promo_a = grant(org, 10, GrantSource.PROMO, expires_at=now + timedelta(days=30)).grant

    entry = debit(org, 25, "usage:1")

    parts = {a.grant_id: a.amount_micros for a in entry.allocations.all()}
    # trial expires first; then plan and promo expire together: promo has the lower priority number
    assert parts == {trial.pk: -10 * C, promo_a.pk: -10 * C, plan.pk: -5 * C}
    assert Grant.objects.get(pk=paid.pk).remaining_micros == 10 * C
    assert entry.grant is None  # spanned several grants; the allocations say how
    assert_reconciled(org)


def test_a_strict_debit_it_cannot_cover_is_refused_and_writes_nothing(org):
    grant(org, 5)
    with pytest.raises(InsufficientCredits) as refused:
        debit(org, 6, "usage:1")

    body = refused.value.as_dict()
    assert (body["code"], body["balance"], body["required"]) == ("insufficient_credits", "5", "6")
    assert body["top_up_url"].endswith("/billing/top-up/")
    assert refused.value.status == 402
    assert LedgerEntry.objects.filter(kind=EntryKind.USAGE).count() == 0
    assert account(org).balance_micros == 5 * C


def test_replaying_a_key_returns_the_first_entry_and_debits_once(org):
    grant(org, 10)
    first = debit(org, 3, "usage:abc")
    again = debit(org, 3, "usage:abc")
    assert again.pk == first.pk
    assert account(org).balance_micros == 7 * C
    with pytest.raises(IdempotencyConflict):
        debit(org, 4, "usage:abc")


def test_expired_grants_are_never_spendable(org):
    grant(org, 10, GrantSource.TRIAL, expires_at=timezone.now() + timedelta(days=7))
    grant(org, 2)
    with time_machine.travel(timezone.now() + timedelta(days=8)):
        with pytest.raises(InsufficientCredits):
            debit(org, 3, "usage:1")
        debit(org, 2, "usage:2")
    # the write-off of the trial happened with the debit, as an entry
    kinds = list(LedgerEntry.objects.filter(account__org=org).order_by("id").values_list("kind", "amount_micros"))
    assert kinds == [("grant", 10 * C), ("grant", 2 * C), ("expiry", -10 * C), ("usage", -2 * C)]
    assert_reconciled(org)


def test_the_expiry_task_writes_expiry_entries_once(org, other_org):
    grant(org, 10, GrantSource.TRIAL, expires_at=timezone.now() + timedelta(days=7))
    grant(other_org, 4, GrantSource.PROMO, expires_at=timezone.now() + timedelta(days=1))
    with time_machine.travel(timezone.now() + timedelta(days=8)):
        assert services.grants_expire() == 2
        assert services.grants_expire() == 0
    assert account(org).balance_micros == 0
    assert account(other_org).balance_micros == 0
    assert_reconciled(org, other_org)


def test_a_grant_cannot_expire_in_the_past(org):
    with pytest.raises(InvalidRequest):
        grant(org, 1, expires_at=timezone.now() - timedelta(seconds=1))


@pytest.mark.parametrize("amount", [0, -5, 1.5, True])
def test_amounts_must_be_positive_whole_micros(org, amount):
    with pytest.raises(InvalidRequest):
        services.credits_debit(org=org, amount_micros=amount, idempotency_key="k")


# --- holds ----------------------------------------------------------------


def test_a_hold_reserves_and_a_smaller_capture_releases_the_rest(org):
    grant(org, 100)
    hold = services.hold_create(org=org, amount_micros=40 * C, idempotency_key="h1")
    assert account(org).available_micros == 60 * C
    with pytest.raises(InsufficientCredits):
        debit(org, 61, "usage:too-much")  # strict debits respect holds

    hold, entry = services.hold_capture(org=org, hold_id=hold.pk, amount_micros=25 * C)

    assert hold.status == HoldStatus.CAPTURED
    assert entry.hold == hold and entry.amount_micros == -25 * C
    acct = account(org)
    assert (acct.balance_micros, acct.held_micros) == (75 * C, 0)
    assert_reconciled(org)


def test_a_capture_past_the_balance_leaves_debt_that_blocks_new_holds_until_paid(org):
    grant(org, 10)
    services.account_set_plan(org=org, plan_code="pro", overage_allowed=True)  # else refused: see test_hold_capture
    hold = services.hold_create(org=org, amount_micros=8 * C)
    services.hold_capture(org=org, hold_id=hold.pk, amount_micros=14 * C)

    acct = account(org)
    assert (acct.balance_micros, acct.debt_micros) == (-4 * C, 4 * C)
    with pytest.raises(InsufficientCredits):
        services.hold_create(org=org, amount_micros=1 * C)

    grant(org, 10)  # a top-up pays the debt first
    acct = account(org)
    assert (acct.balance_micros, acct.debt_micros) == (6 * C, 0)
    assert Grant.objects.filter(account=acct).order_by("-id").first().remaining_micros == 6 * C
    services.hold_create(org=org, amount_micros=6 * C)
    assert_reconciled(org)


def test_capture_twice_returns_the_first_and_a_different_amount_conflicts(org):
    grant(org, 10)
    hold = services.hold_create(org=org, amount_micros=5 * C)
    _h, first = services.hold_capture(org=org, hold_id=hold.pk, amount_micros=3 * C)
    _h, again = services.hold_capture(org=org, hold_id=hold.pk, amount_micros=3 * C)
    assert again.pk == first.pk
    with pytest.raises(Conflict):
        services.hold_capture(org=org, hold_id=hold.pk, amount_micros=4 * C)
    assert account(org).balance_micros == 7 * C


def test_released_holds_free_credits_and_cannot_be_captured(org):
    grant(org, 10)
    hold = services.hold_create(org=org, amount_micros=5 * C)
    services.hold_release(org=org, hold_id=hold.pk)
    services.hold_release(org=org, hold_id=hold.pk)  # harmless twice
    assert account(org).held_micros == 0
    with pytest.raises(Conflict):
        services.hold_capture(org=org, hold_id=hold.pk, amount_micros=1 * C)


def test_holds_expire_on_their_own_and_a_late_capture_still_records_usage(org):
    grant(org, 10)
    hold = services.hold_create(org=org, amount_micros=5 * C, expires_in=timedelta(minutes=15))
    with time_machine.travel(timezone.now() + timedelta(minutes=16)):
        assert services.holds_expire() == 1
        assert services.holds_expire() == 0
    assert account(org).held_micros == 0
    hold, entry = services.hold_capture(org=org, hold_id=hold.pk, amount_micros=2 * C)
    assert entry.amount_micros == -2 * C and account(org).held_micros == 0
    assert_reconciled(org)


def test_another_orgs_hold_is_not_found(org, other_org):
    grant(org, 10)
    hold = services.hold_create(org=org, amount_micros=5 * C)
    with pytest.raises(NotFound):
        services.hold_capture(org=other_org, hold_id=hold.pk, amount_micros=1 * C)
    with pytest.raises(NotFound):
        services.hold_release(org=other_org, hold_id=hold.pk)


def test_a_hold_key_replay_returns_the_same_hold(org):
    grant(org, 10)
    first = services.hold_create(org=org, amount_micros=5 * C, idempotency_key="run-1")
    again = services.hold_create(org=org, amount_micros=5 * C, idempotency_key="run-1")
    assert first.pk == again.pk and account(org).held_micros == 5 * C


# --- transfers ------------------------------------------------------------


def test_only_purchased_credits_can_be_sent_and_totals_are_conserved(org, other_org, owner):
    grant(org, 50, GrantSource.TRIAL, expires_at=timezone.now() + timedelta(days=7))
    grant(org, 20, GrantSource.PURCHASE)
    with pytest.raises(InsufficientCredits):
        services.credits_transfer(from_org=org, to_org=other_org, amount_micros=21 * C, idempotency_key="t0")

    transfer = services.credits_transfer(
        from_org=org, to_org=other_org, amount_micros=15 * C, idempotency_key="t1", note="Thanks!", sent_by=owner,
    )

    assert account(org).balance_micros == 55 * C
    assert account(other_org).balance_micros == 15 * C
    received = Grant.objects.get(account__org=other_org)
    assert received.source == GrantSource.TRANSFER_IN and not received.transferable
    kinds = set(transfer.entries.values_list("kind", flat=True))
    assert kinds == {"transfer_out", "transfer_in"}
    # received credits cannot be sent on
    with pytest.raises(InsufficientCredits):
        services.credits_transfer(from_org=other_org, to_org=org, amount_micros=1 * C, idempotency_key="back")
    assert_reconciled(org, other_org)


def test_a_transfer_key_sends_once(org, other_org):
    grant(org, 20)
    first = services.credits_transfer(from_org=org, to_org=other_org, amount_micros=5 * C, idempotency_key="t")
    again = services.credits_transfer(from_org=org, to_org=other_org, amount_micros=5 * C, idempotency_key="t")
    assert first.pk == again.pk
    assert account(other_org).balance_micros == 5 * C
    with pytest.raises(IdempotencyConflict):
        services.credits_transfer(from_org=org, to_org=other_org, amount_micros=6 * C, idempotency_key="t")


def test_credits_cannot_be_sent_to_oneself(org):
    grant(org, 20)
    with pytest.raises(InvalidRequest):
        services.credits_transfer(from_org=org, to_org=org, amount_micros=1 * C, idempotency_key="t")


def test_held_credits_cannot_be_sent(org, other_org):
    grant(org, 20)
    services.hold_create(org=org, amount_micros=15 * C)
    with pytest.raises(InsufficientCredits):
        services.credits_transfer(from_org=org, to_org=other_org, amount_micros=6 * C, idempotency_key="t")


# --- refunds, disputes, adjustments ----------------------------------------


def test_a_clawback_takes_what_is_left_and_reports_the_shortfall(org):
    purchase = grant(org, 100, stripe_object_id="ch_1").grant
    debit(org, 70, "usage:1")
    result = services.credits_clawback(grant=purchase, amount_micros=50 * C, idempotency_key="stripe:re_1")
    assert (result.clawed_micros, result.shortfall_micros) == (30 * C, 20 * C)
    again = services.credits_clawback(grant=purchase, amount_micros=50 * C, idempotency_key="stripe:re_1")
    assert again.entry.pk == result.entry.pk and again.shortfall_micros == 20 * C
    assert account(org).balance_micros == 0
    assert_reconciled(org)


def test_a_dispute_freezes_credits_and_a_win_gives_them_back(org):
    purchase = grant(org, 40).grant
    services.credits_freeze(grant=purchase, amount_micros=40 * C, idempotency_key="stripe:dp_1:freeze")
    assert account(org).balance_micros == 0
    with pytest.raises(InsufficientCredits):
        debit(org, 1, "usage:1")
    services.credits_unfreeze(grant=purchase, idempotency_key="stripe:dp_1:unfreeze")
    assert account(org).balance_micros == 40 * C
    assert Grant.objects.get(pk=purchase.pk).frozen_micros == 0
    assert_reconciled(org)


def test_staff_adjustments_need_a_reason_and_never_take_more_than_available(org, owner):
    with pytest.raises(InvalidRequest):
        services.credits_adjust(org=org, amount_micros=5 * C, reason=" ", staff_user=owner)
    services.credits_adjust(org=org, amount_micros=5 * C, reason="goodwill", staff_user=owner)
    with pytest.raises(Conflict):
        services.credits_adjust(org=org, amount_micros=-6 * C, reason="oops", staff_user=owner)
    entry = services.credits_adjust(org=org, amount_micros=-2 * C, reason="correction", staff_user=owner)
    assert entry.kind == EntryKind.ADJUSTMENT and entry.staff_user == owner
    assert account(org).balance_micros == 3 * C
    assert_reconciled(org)


# --- the ledger itself --------------------------------------------------------


def test_entries_cannot_be_edited_or_deleted(org):
    entry = grant(org, 10)
    with pytest.raises(DatabaseError), transaction.atomic():
        LedgerEntry.objects.filter(pk=entry.pk).update(amount_micros=1)
    with pytest.raises(DatabaseError), transaction.atomic():
        LedgerEntry.objects.filter(pk=entry.pk).delete()


def test_reconcile_names_an_account_whose_cache_drifted(org, other_org):
    grant(org, 10)
    grant(other_org, 10)
    CreditAccount.objects.filter(org=org).update(balance_micros=11 * C)
    mismatches = services.ledger_reconcile()
    assert [(m.org_slug, m.what, m.cached_micros, m.actual_micros) for m in mismatches] == [
        ("acme", "balance", 11 * C, 10 * C),
        ("acme", "debt", 0, -1 * C),
    ]


def test_a_new_org_reads_as_empty_and_gets_its_account_on_the_first_write(org):
    # orgs sits below usage, so creating an organization no longer opens its
    # credit account: the ledger opens it on the first write.
    from orgs.services import org_create
    from tests.factories import UserFactory
    from usage import selectors

    new = org_create(name="Fresh", owner=UserFactory())
    assert not CreditAccount.objects.filter(org=new).exists()
    summary = selectors.balance_summary(new)
    assert (summary.balance_micros, summary.available_micros, summary.grants) == (0, 0, [])
    with pytest.raises(InsufficientCredits):
        debit(new, 1, "usage:first")
    grant(new, 2)
    assert account(new).balance_micros == 2 * C


def test_an_overage_plan_lets_usage_run_past_zero_as_debt(org):
    grant(org, 5)
    services.account_set_plan(org=org, plan_code="pro", overage_allowed=True)
    debit(org, 8, "usage:1")
    acct = account(org)
    assert (acct.balance_micros, acct.debt_micros, acct.plan_code) == (-3 * C, 3 * C, "pro")
    with pytest.raises(InsufficientCredits):  # holds still need credits
        services.hold_create(org=org, amount_micros=1 * C)
    assert_reconciled(org)
