import itertools
from datetime import timedelta

import pytest
import time_machine
from django.core import mail
from django.utils import timezone

from billing import services, tasks
from billing.models import AllowancePeriod, BillingStatus
from tests.billing import stripe_builders as b
from tests.billing.helpers import C, invoice_for, state_of, subscription_for
from usage.models import CreditAccount, Grant, GrantSource

pytestmark = pytest.mark.django_db


def allowance_grants(org):
    return Grant.objects.filter(account__org=org, source=GrantSource.PLAN_ALLOWANCE).order_by("id")


def paid_period(webhooks, fake, org, plan="pro", **kw):
    sub = subscription_for(fake, org, plan, **kw)
    webhooks.send("customer.subscription.created", sub)
    invoice = invoice_for(fake, sub)
    webhooks.send("invoice.paid", invoice)
    return sub, invoice


def test_a_paid_invoice_puts_the_plan_on_the_org_and_grants_the_allowance_once(webhooks, fake_stripe, org, owner):
    sub, invoice = paid_period(webhooks, fake_stripe, org, "pro")
    # the same invoice again, as a new event (Stripe retries, invoice.payment_succeeded twins)
    webhooks.send("invoice.paid", invoice)

    state = state_of(org)
    assert (state.plan_code, state.status, state.subscription_id, state.interval) == ("pro", "active", sub["id"], "month")
    account = CreditAccount.objects.get(org=org)
    assert (account.plan_code, account.overage_allowed) == ("pro", True)
    pro = [g for g in allowance_grants(org) if g.amount_micros == 10_000 * C]
    assert len(pro) == 1
    assert pro[0].expires_at.timestamp() == sub["items"]["data"][0]["current_period_end"]


def test_the_next_periods_allowance_replaces_the_previous_one(webhooks, fake_stripe, org, owner):
    sub, _ = paid_period(webhooks, fake_stripe, org, "starter")
    first = allowance_grants(org).last()
    item = sub["items"]["data"][0]
    start, end = item["current_period_end"], item["current_period_end"] + 30 * 86400
    item.update(current_period_start=start, current_period_end=end)
    webhooks.send("customer.subscription.updated", sub)
    webhooks.send("invoice.paid", invoice_for(fake_stripe, sub))

    first.refresh_from_db()
    assert first.remaining_micros == 0  # expired when the new period's allowance arrived
    current = allowance_grants(org).last()
    assert (current.amount_micros, current.remaining_micros) == (1_000 * C, 1_000 * C)
    assert AllowancePeriod.objects.filter(org=org, plan_code="starter").count() == 2


ORDERS = list(itertools.permutations(["created", "updated", "deleted"]))


@pytest.mark.parametrize("order", ORDERS, ids=["-".join(o) for o in ORDERS])
@pytest.mark.parametrize("latest", ["active_on_max", "canceled"])
def test_subscription_events_in_any_order_end_in_stripes_latest_state(webhooks, fake_stripe, org, owner, order, latest):
    services.billing_state_for(org)  # on Free before any of it
    start = b.now()
    created = subscription_for(fake_stripe, org, "pro", status="incomplete", period_start=start)
    sub_id = created["id"]
    updated = subscription_for(fake_stripe, org, "max", id=sub_id, period_start=start)
    deleted = subscription_for(fake_stripe, org, "max", id=sub_id, status="canceled", period_start=start,
                               canceled_at=start + 60, ended_at=start + 60)
    payloads = {"created": created, "updated": updated, "deleted": deleted}
    # Stripe now holds the latest state; the events carry whatever they carried when sent.
    fake_stripe.put(updated if latest == "active_on_max" else deleted)

    for name in order:
        webhooks.post(b.event(f"customer.subscription.{name}", payloads[name]))

    state = state_of(org)
    account = CreditAccount.objects.get(org=org)
    if latest == "active_on_max":
        assert (state.plan_code, state.status, state.subscription_id) == ("max", BillingStatus.ACTIVE, sub_id)
        assert state.current_period_end.timestamp() == updated["items"]["data"][0]["current_period_end"]
        assert account.plan_code == "max"
    else:
        assert state.plan_code == "free" and state.status == BillingStatus.FREE and state.subscription_id == ""
        assert account.plan_code == "free"


def test_a_canceled_subscription_falls_to_free_and_its_allowance_ends(webhooks, fake_stripe, org, owner):
    sub, _ = paid_period(webhooks, fake_stripe, org, "pro")
    sub.update(status="canceled", canceled_at=b.now(), ended_at=b.now())
    webhooks.send("customer.subscription.deleted", sub)

    state = state_of(org)
    assert (state.plan_code, state.status) == ("free", BillingStatus.FREE)
    assert all(g.remaining_micros == 0 for g in allowance_grants(org) if g.amount_micros == 10_000 * C)
    free = allowance_grants(org).last()
    assert (free.amount_micros, free.remaining_micros) == (50 * C, 50 * C)


def test_a_failed_renewal_starts_a_grace_period_and_paying_in_it_restores_everything(webhooks, fake_stripe, org, owner):
    sub, _ = paid_period(webhooks, fake_stripe, org, "pro")
    item = sub["items"]["data"][0]
    item.update(current_period_start=item["current_period_end"], current_period_end=item["current_period_end"] + 30 * 86400)
    sub["status"] = "past_due"
    failed = invoice_for(fake_stripe, sub, status="open")
    webhooks.send("invoice.payment_failed", failed)
    webhooks.send("customer.subscription.updated", sub)

    state = state_of(org)
    assert state.status == BillingStatus.PAST_DUE and state.plan_code == "pro"
    assert state.grace_ends_at - timezone.now() > timedelta(days=6, hours=23)
    [failed_mail] = [m for m in mail.outbox if "payment failed" in m.subject.lower()]
    assert f"stays active until {state.grace_ends_at:%B} {state.grace_ends_at.day}, {state.grace_ends_at.year}" in failed_mail.body
    webhooks.send("invoice.payment_failed", failed)  # a second failure: the same grace period, no second mail
    assert sum("payment failed" in m.subject.lower() for m in mail.outbox) == 1
    assert CreditAccount.objects.get(org=org).plan_code == "pro"

    # paid within the grace period: active again, the new period's allowance arrives
    paid = dict(failed, status="paid", amount_paid=failed["amount_due"], amount_remaining=0)
    sub["status"] = "active"
    fake_stripe.put(sub)
    webhooks.send("invoice.paid", paid)
    state = state_of(org)
    assert (state.status, state.plan_code, state.grace_ends_at) == (BillingStatus.ACTIVE, "pro", None)
    assert allowance_grants(org).last().amount_micros == 10_000 * C
    assert allowance_grants(org).last().expires_at.timestamp() == item["current_period_end"]


def test_grace_then_downgrade_to_free_with_time_frozen(webhooks, fake_stripe, org, owner,
                                                     django_capture_on_commit_callbacks):
    with time_machine.travel(timezone.now(), tick=False) as clock:
        sub, _ = paid_period(webhooks, fake_stripe, org, "pro")
        sub["status"] = "past_due"
        webhooks.send("invoice.payment_failed", invoice_for(fake_stripe, sub, status="open"))
        grace_ends = state_of(org).grace_ends_at

        clock.move_to(grace_ends - timedelta(minutes=1))
        assert services.grace_periods_end() == 0
        assert state_of(org).plan_code == "pro"

        clock.move_to(grace_ends + timedelta(minutes=1))
        with django_capture_on_commit_callbacks(execute=True):
            assert tasks.grace_periods_end.delay().get() == 1  # the beat task
        assert services.grace_periods_end() == 0  # a second run changes nothing

        state = state_of(org)
        assert (state.plan_code, state.status) == ("free", BillingStatus.FREE)
        account = CreditAccount.objects.get(org=org)
        assert (account.plan_code, account.overage_allowed) == ("free", False)
        assert sum(g.remaining_micros for g in allowance_grants(org) if g.amount_micros == 10_000 * C) == 0
        assert allowance_grants(org).last().amount_micros == 50 * C
        assert any("downgraded" in m.subject.lower() for m in mail.outbox)

        # Stripe still says past_due: another update does not bring the plan back
        webhooks.send("customer.subscription.updated", sub)
        assert state_of(org).plan_code == "free"

        # paying later restores the plan
        sub["status"] = "active"
        fake_stripe.put(sub)
        webhooks.send("invoice.paid", invoice_for(fake_stripe, sub))
        assert (state_of(org).plan_code, state_of(org).status) == ("pro", BillingStatus.ACTIVE)


def test_a_stale_payment_failure_after_the_invoice_was_paid_starts_no_grace(webhooks, fake_stripe, org, owner):
    sub, invoice = paid_period(webhooks, fake_stripe, org, "pro")
    # The failure of a first attempt delivered after the retry succeeded: Stripe's invoice is paid.
    webhooks.post(b.event("invoice.payment_failed", dict(invoice, status="open")))

    state = state_of(org)
    assert state.status == BillingStatus.ACTIVE and state.grace_ends_at is None


def test_an_invoice_paid_before_the_subscription_event_still_applies_the_plan(webhooks, fake_stripe, org, owner):
    sub = fake_stripe.put(subscription_for(fake_stripe, org, "starter"))

    webhooks.send("invoice.paid", invoice_for(fake_stripe, sub))

    state = state_of(org)
    assert (state.plan_code, state.subscription_id) == ("starter", sub["id"])
    assert allowance_grants(org).last().amount_micros == 1_000 * C


def test_a_late_invoice_of_a_canceled_subscription_grants_nothing(webhooks, fake_stripe, org, owner):
    sub = subscription_for(fake_stripe, org, "pro", status="canceled", canceled_at=b.now(), ended_at=b.now())
    fake_stripe.put(sub)

    webhooks.send("invoice.paid", invoice_for(fake_stripe, sub))

    assert not allowance_grants(org).filter(amount_micros=10_000 * C).exists()
    assert state_of(org).plan_code != "pro"
