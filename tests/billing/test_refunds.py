import pytest

from billing.models import DisputeRecord, Purchase, RefundRecord
from tests.billing import stripe_builders as b
from tests.billing.helpers import C, balance, paid_session, start_pack_checkout
from usage import services as usage_services

pytestmark = pytest.mark.django_db


@pytest.fixture
def bought(webhooks, fake_stripe, org, owner):
    """2,000 credits bought for $18, as Stripe holds the session, intent and charge."""
    start = start_pack_checkout(org, owner, "pack_2000")
    session = paid_session(fake_stripe, start)
    webhooks.send("checkout.session.completed", session)
    intent = fake_stripe.get(session["payment_intent"])
    return Purchase.objects.get(org=org), fake_stripe.get(intent["latest_charge"])


def refunded(charge, cents):
    return dict(charge, amount_refunded=cents, refunded=cents >= charge["amount"])


def test_a_full_refund_before_spending_claws_back_the_whole_pack(webhooks, bought, org):
    purchase, charge = bought
    before = balance(org)

    webhooks.send("charge.refunded", refunded(charge, charge["amount"]))

    assert before - balance(org) == 2000 * C
    record = RefundRecord.objects.get()
    assert (record.requested_micros, record.clawed_micros, record.shortfall_micros) == (2000 * C, 2000 * C, 0)
    assert usage_services.ledger_reconcile(org_ids=[org.pk]) == []


def test_a_refund_claws_back_its_share_never_below_what_is_left_and_records_the_shortfall(webhooks, bought, org):
    purchase, charge = bought
    # Spend everything else first, then 1,500 of the pack's 2,000.
    usage_services.credits_debit(org=org, amount_micros=balance(org) - 500 * C, idempotency_key="usage:spend")
    assert purchase.grant.__class__.objects.get(pk=purchase.grant_id).remaining_micros == 500 * C

    webhooks.send("charge.refunded", refunded(charge, 900))  # half of $18: 1,000 credits
    first = RefundRecord.objects.get()
    assert (first.requested_micros, first.clawed_micros, first.shortfall_micros) == (1000 * C, 500 * C, 500 * C)

    webhooks.send("charge.refunded", refunded(charge, 1800))  # the rest: 1,000 more, none left to take
    second = RefundRecord.objects.latest("id")
    assert (second.requested_micros, second.clawed_micros, second.shortfall_micros) == (1000 * C, 0, 1000 * C)
    assert balance(org) == 0
    assert usage_services.ledger_reconcile(org_ids=[org.pk]) == []


def test_a_replayed_refund_event_claws_back_nothing_more(webhooks, bought, org):
    _purchase, charge = bought
    webhooks.send("charge.refunded", refunded(charge, 900))
    after_first = balance(org)

    webhooks.send("charge.refunded", refunded(charge, 900))

    assert balance(org) == after_first
    assert RefundRecord.objects.count() == 1


def test_a_refund_of_something_that_is_not_a_credit_purchase_is_ignored(webhooks, fake_stripe, org, owner):
    charge = b.charge(amount=9900, amount_refunded=9900, refunded=True, payment_intent=None)
    webhooks.send("charge.refunded", charge)

    assert not RefundRecord.objects.exists()


def test_a_dispute_freezes_the_credits_in_question_until_it_is_won(webhooks, fake_stripe, bought, org):
    purchase, charge = bought
    before = balance(org)
    dispute = b.dispute(amount=charge["amount"], charge=charge["id"], payment_intent=purchase.payment_intent_id)

    webhooks.send("charge.dispute.created", dispute)
    webhooks.send("charge.dispute.created", dispute)  # twice: frozen once

    record = DisputeRecord.objects.get()
    assert record.frozen_micros == 2000 * C
    assert before - balance(org) == 2000 * C

    webhooks.send("charge.dispute.closed", dict(dispute, status="won"))
    assert balance(org) == before
    assert DisputeRecord.objects.get().status == "won"


def test_a_lost_dispute_leaves_the_credits_frozen(webhooks, fake_stripe, bought, org):
    purchase, charge = bought
    before = balance(org)
    dispute = b.dispute(amount=charge["amount"], charge=charge["id"], payment_intent=purchase.payment_intent_id)
    webhooks.send("charge.dispute.created", dispute)

    webhooks.send("charge.dispute.closed", dict(dispute, status="lost"))

    assert before - balance(org) == 2000 * C
    assert DisputeRecord.objects.get().closed_at is not None
