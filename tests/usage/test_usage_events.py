"""Pricing, billing modes, rounding, grant order and member caps of recorded usage."""

from datetime import timedelta
from decimal import Decimal

import pytest
import time_machine
from django.utils import timezone

from billing_project.errors import InvalidRequest, NotFound, PermissionDenied
from orgs.models import AuditEvent
from usage import services
from usage.errors import IdempotencyConflict, InsufficientCredits, SpendLimitReached
from usage.models import (
    BillingMode,
    CreditAccount,
    Grant,
    GrantSource,
    LedgerEntry,
    MemberSpend,
    UsageEvent,
)
from usage.services import UsageInput, rates

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("debit_path")]

C = 1_000_000


def fund(org, credits, source=GrantSource.PURCHASE, **kw):
    return services.credits_grant(org=org, amount_micros=credits * C, source=source, **kw).grant


def record(org, key="e", meter="action.medium", quantity="1", **kw):
    return services.usage_record(org=org, event=UsageInput(idempotency_key=key, meter=meter, quantity=Decimal(quantity), **kw))


def balance(org):
    return CreditAccount.objects.get(org=org).balance_micros


def assert_reconciled(*orgs):
    assert services.ledger_reconcile(org_ids=[o.pk for o in orgs]) == []


# --- the rate card ----------------------------------------------------------------


def test_the_default_card_has_the_action_tiers_and_provider_prices_with_margin(rate_card):
    price = lambda meter, model="": rate_card.price(meter, model, "free").credits_per_unit  # noqa: E731
    assert [price(f"action.{t}") for t in ("small", "medium", "large", "xl")] == [1, Decimal("2.5"), 5, 15]
    # list price in USD x 1.5 / $0.01 per credit
    assert price("ai.input_tokens", "gpt-5-mini") == Decimal("0.0000375")
    assert price("ai.output_tokens", "gpt-5-mini") == Decimal("0.0003")
    assert price("tts.characters", "gpt-4o-mini-tts") == Decimal("0.00225")
    assert price("stt.minutes", "whisper-1") == Decimal("0.9")
    assert price("image.generated", "gpt-image-1") == Decimal("6.3")
    assert price("video.seconds", "sora-2") == Decimal("15")


def test_a_plan_override_prices_usage_for_orgs_on_that_plan(org):
    fund(org, 100)
    services.account_set_plan(org=org, plan_code="max", overage_allowed=False)
    event = record(org, meter="ai.output_tokens", model="gpt-5-mini", quantity="10000").event
    # Max: cost plus 25% -> 0.00025 credits per token
    assert (event.credits_per_unit, event.credits_micros) == (Decimal("0.00025"), 2_500_000)


def test_a_price_edit_applies_to_the_next_event(org):
    fund(org, 100)
    services.rate_set(meter_code="action.small", credits_per_unit="1.5")
    rates.clear_cache()  # the edit clears it on commit; the test's transaction never commits
    assert record(org, meter="action.small").event.credits_micros == 1_500_000


@pytest.mark.parametrize("price", [0.5, "abc", "NaN", "-1"])
def test_a_price_is_an_exact_number_of_zero_or_more_credits(price):
    with pytest.raises(InvalidRequest) as refused:
        services.rate_set(meter_code="action.small", credits_per_unit=price)
    assert refused.value.code == "invalid_price"


def test_the_loader_is_idempotent_and_the_command_loads_the_file(rate_card):
    from django.core.management import call_command

    call_command("load_rate_card")
    call_command("load_rate_card")
    from usage.models import Meter, Rate

    assert Meter.objects.count() == 11
    assert Rate.objects.filter(plan_code="").count() == 11


# --- rounding ---------------------------------------------------------------------


@pytest.mark.parametrize("tokens, micros", [
    (1, 38),  # 37.5 micro-credits rounds half up
    (3, 113),  # 112.5 -> 113
    (2, 75),
    (12_400, 465_000),
])
def test_each_charge_rounds_once_half_up_to_a_micro_credit(org, tokens, micros):
    fund(org, 10)
    event = record(org, meter="ai.input_tokens", model="gpt-5-mini", quantity=str(tokens)).event
    assert event.credits_micros == micros
    assert balance(org) == 10 * C - micros


def test_rounding_is_per_event_not_on_sums(org):
    fund(org, 10)
    for i in range(4):
        record(org, key=f"t{i}", meter="ai.input_tokens", model="gpt-5-mini", quantity="1")
    assert balance(org) == 10 * C - 4 * 38


# --- billing modes ----------------------------------------------------------------


def test_the_orgs_own_key_bills_compute_only(org, owner):
    fund(org, 100)
    key = services.provider_key_create(org=org, provider="openai", label="prod", last_four="x9Qz", actor=owner)

    tokens = record(org, "a", meter="ai.output_tokens", model="gpt-5-mini", quantity="10000", provider_key_id=key.pk).event
    compute = record(org, "b", meter="compute.seconds", quantity="100", provider_key_id=key.pk).event
    full = record(org, "c", meter="ai.output_tokens", model="gpt-5-mini", quantity="10000").event

    assert (tokens.billing_mode, tokens.credits_micros, tokens.ledger_entry_id) == (BillingMode.OWN_KEY, 0, None)
    assert (compute.billing_mode, compute.credits_micros) == (BillingMode.OWN_KEY, 200_000)
    assert (full.billing_mode, full.credits_micros) == (BillingMode.PLATFORM_KEY, 3 * C)
    assert balance(org) == 100 * C - 200_000 - 3 * C
    assert_reconciled(org)


def test_the_mode_comes_from_the_key_on_record_not_the_caller(org, other_org, owner):
    fund(org, 100)
    key = services.provider_key_create(org=org, provider="openai", label="prod", last_four="abcd", actor=owner)
    theirs = services.provider_key_create(org=other_org, provider="openai", label="x", last_four="wxyz")
    with pytest.raises(NotFound):
        record(org, "a", meter="ai.output_tokens", model="gpt-5-mini", quantity="1000", provider_key_id=theirs.pk)
    anthropic = services.provider_key_create(org=org, provider="anthropic", label="claude", last_four="zzzz")
    with pytest.raises(InvalidRequest):
        record(org, "b", meter="ai.output_tokens", model="gpt-5-mini", quantity="1000", provider_key_id=anthropic.pk)

    before = timezone.now()
    with time_machine.travel(before + timedelta(hours=1)):
        services.provider_key_revoke(org=org, key_id=key.pk, actor=owner)
    with time_machine.travel(before + timedelta(hours=2)):
        late = record(org, "c", meter="ai.output_tokens", model="gpt-5-mini", quantity="1000", provider_key_id=key.pk).event
        early = record(org, "d", meter="ai.output_tokens", model="gpt-5-mini", quantity="1000", provider_key_id=key.pk,
                       occurred_at=before + timedelta(minutes=30)).event
    assert late.billing_mode == BillingMode.PLATFORM_KEY and late.credits_micros == 300_000
    assert early.billing_mode == BillingMode.OWN_KEY and early.credits_micros == 0


def test_provider_keys_keep_only_the_last_four_and_need_a_billing_role(org, member, owner):
    with pytest.raises(PermissionDenied):
        services.provider_key_create(org=org, provider="openai", label="mine", last_four="abcd", actor=member)
    with pytest.raises(InvalidRequest):
        services.provider_key_create(org=org, provider="openai", label="oops", last_four="sk-proj-abcdefgh", actor=owner)
    key = services.provider_key_create(org=org, provider="openai", label="prod", last_four="abcd", actor=owner)
    assert key.last_four == "abcd"
    assert AuditEvent.objects.filter(org=org, action="provider_key.created").exists()


def test_a_pasted_provider_key_comes_down_to_its_last_four():
    assert services.provider_key_last_four("  sk-proj-abcdefghZq7w\n") == "Zq7w"
    assert services.provider_key_last_four("Zq7w") == "Zq7w"
    for not_a_key in ("", "Zq7", "ab cd", "sk-proj abcd", "ab\x00cd", "abc\u200bd"):
        with pytest.raises(InvalidRequest) as refused:
            services.provider_key_last_four(not_a_key)
        assert refused.value.code == "invalid_last_four"


# --- strictness, replays, grant order -----------------------------------------------


def test_usage_burns_the_grant_that_expires_first(org):
    paid = fund(org, 10)
    trial = fund(org, 3, GrantSource.TRIAL, expires_at=timezone.now() + timedelta(days=7))
    event = record(org, meter="action.large").event  # 5 credits
    parts = {a.grant_id: a.amount_micros for a in event.ledger_entry.allocations.all()}
    assert parts == {trial.pk: -3 * C, paid.pk: -2 * C}
    assert Grant.objects.get(pk=trial.pk).remaining_micros == 0


def test_expired_grants_are_written_off_before_usage_is_checked(org):
    fund(org, 10, GrantSource.TRIAL, expires_at=timezone.now() + timedelta(days=1))
    with time_machine.travel(timezone.now() + timedelta(days=2)):
        with pytest.raises(InsufficientCredits):
            record(org)
    assert balance(org) == 10 * C  # the refusal rolled back the write-off too; the next write or the task does it
    with time_machine.travel(timezone.now() + timedelta(days=2)):
        assert services.grants_expire() == 1
    assert balance(org) == 0
    assert_reconciled(org)


def test_an_event_the_database_hands_back_is_checked_once(org, member):
    # An expired grant makes usage_ledger_debit answer "fallback"; the Python
    # writer then decides with the member and key already looked up.
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    fund(org, 10)
    fund(org, 1, GrantSource.TRIAL, expires_at=timezone.now() + timedelta(days=1))
    with time_machine.travel(timezone.now() + timedelta(days=2)), CaptureQueriesContext(connection) as queries:
        event = record(org, member_email=member.email).event
    assert event.member == member and event.credits_micros == C * 5 // 2
    assert sum("orgs_membership" in q["sql"] for q in queries.captured_queries) == 1
    assert_reconciled(org)


def test_a_refused_event_records_nothing_and_a_replay_records_once(org):
    fund(org, 3)
    with pytest.raises(InsufficientCredits):
        record(org, "big", meter="action.large")
    assert not UsageEvent.objects.exists()
    first = record(org, "k")
    again = record(org, "k")
    assert again.replayed and again.event.pk == first.event.pk
    assert again.balance_after_micros == first.balance_after_micros == C // 2
    with pytest.raises(IdempotencyConflict):
        record(org, "k", quantity="2")
    assert UsageEvent.objects.count() == 1 and balance(org) == C // 2


def test_an_overage_plan_records_usage_past_zero_as_debt(org):
    fund(org, 1)
    services.account_set_plan(org=org, plan_code="pro", overage_allowed=True)
    event = record(org, meter="action.large").event
    account = CreditAccount.objects.get(org=org)
    assert (event.balance_after_micros, account.debt_micros) == (-4 * C, 4 * C)
    assert_reconciled(org)


# --- member caps ---------------------------------------------------------------------


def test_only_owners_and_admins_set_caps(org, member, owner):
    with pytest.raises(PermissionDenied):
        services.member_limit_set(org=org, member=owner, monthly_limit_micros=C, actor=member)
    services.member_limit_set(org=org, member=member, monthly_limit_micros=C, actor=owner)
    assert AuditEvent.objects.filter(org=org, action="member.spend_limit_set").exists()


def test_a_cap_counts_the_months_spend_and_open_holds(org, member, owner):
    fund(org, 100)
    services.member_limit_set(org=org, member=member, monthly_limit_micros=10 * C, actor=owner)
    record(org, "a", meter="action.large", member=member)  # 5
    services.hold_create(org=org, amount_micros=4 * C, member=member)  # 9 committed
    with pytest.raises(SpendLimitReached):
        record(org, "b", meter="action.medium", member=member)
    with pytest.raises(SpendLimitReached):
        services.hold_create(org=org, amount_micros=2 * C, member=member)
    with pytest.raises(SpendLimitReached):
        services.credits_debit(org=org, amount_micros=2 * C, idempotency_key="d", member=member)
    record(org, "c", meter="action.small", member=member)  # exactly 10
    spend = MemberSpend.objects.get(member=member)
    assert spend.spent_micros == 6 * C and spend.month == timezone.now().date().replace(day=1)


def test_the_cap_starts_again_each_month(org, member, owner):
    fund(org, 100)
    services.member_limit_set(org=org, member=member, monthly_limit_micros=5 * C, actor=owner)
    now = timezone.now()
    with time_machine.travel(now.replace(day=28, hour=12)):
        record(org, "a", meter="action.large", member=member)
        with pytest.raises(SpendLimitReached):
            record(org, "b", meter="action.small", member=member)
    with time_machine.travel(now.replace(day=28, hour=12) + timedelta(days=5)):
        record(org, "b", meter="action.small", member=member)


def test_a_capture_counts_towards_the_cap(org, member, owner):
    fund(org, 100)
    services.member_limit_set(org=org, member=member, monthly_limit_micros=5 * C, actor=owner)
    hold = services.hold_create(org=org, amount_micros=5 * C, member=member)
    services.hold_capture(org=org, hold_id=hold.pk, amount_micros=5 * C)
    assert MemberSpend.objects.get(member=member).spent_micros == 5 * C
    with pytest.raises(SpendLimitReached):
        record(org, "a", meter="action.small", member=member)


def test_a_hold_captured_with_events_links_them(org):
    fund(org, 10)
    hold = services.hold_create(org=org, amount_micros=5 * C)
    hold, events = services.hold_capture_events(org=org, hold_id=hold.pk, events=[
        UsageInput(idempotency_key="x1", meter="action.large", quantity=Decimal(1)),
        UsageInput(idempotency_key="x2", meter="action.small", quantity=Decimal(2)),
    ])
    assert hold.captured_micros == 7 * C and {e.hold_id for e in events} == {hold.pk}
    assert len({e.ledger_entry_id for e in events}) == 1
    assert balance(org) == 3 * C
    entry = LedgerEntry.objects.get(pk=events[0].ledger_entry_id)
    assert entry.hold_id == hold.pk and entry.amount_micros == -7 * C
    assert_reconciled(org)


def test_every_money_moving_service_writes_an_audit_row(org, other_org, owner):
    fund(org, 100)
    record(org)
    services.credits_debit(org=org, amount_micros=C, idempotency_key="d")
    hold = services.hold_create(org=org, amount_micros=C)
    services.hold_capture(org=org, hold_id=hold.pk, amount_micros=C)
    services.credits_transfer(from_org=org, to_org=other_org, amount_micros=C, idempotency_key="t")
    services.credits_adjust(org=org, amount_micros=-C, reason="fix", staff_user=owner)
    actions = set(AuditEvent.objects.filter(org=org).values_list("action", flat=True))
    assert {"credits.granted", "usage.recorded", "credits.usage", "hold.created", "hold.captured",
            "credits.transfer_sent", "credits.adjusted"} <= actions


def test_a_batch_debits_one_entry_per_member_so_the_ledger_attributes_every_credit(org, owner, member):
    fund(org, 100)
    results = services.usage_record_batch(org=org, events=[
        UsageInput(idempotency_key="b1", meter="action.small", quantity=Decimal(3), member=owner),
        UsageInput(idempotency_key="b2", meter="action.large", quantity=Decimal(1), member=member),
        UsageInput(idempotency_key="b3", meter="action.medium", quantity=Decimal(2), member=owner),
        UsageInput(idempotency_key="b4", meter="action.small", quantity=Decimal(1)),
    ])

    assert [r.status for r in results] == ["recorded"] * 4
    entries = {e.member_id: e for e in LedgerEntry.objects.filter(account__org=org, kind="usage")}
    assert {k: -e.amount_micros for k, e in entries.items()} == {owner.pk: 8 * C, member.pk: 5 * C, None: 1 * C}
    for result in results:
        assert result.event.ledger_entry_id == entries[result.event.member_id].pk
    assert balance(org) == 86 * C
    assert min(e.balance_after_micros for e in entries.values()) == 86 * C
    assert_reconciled(org)
