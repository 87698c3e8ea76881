from datetime import timedelta

import pytest
import stripe
import time_machine
from django.utils import timezone

from billing import services
from billing.models import OveragePrice, OverageReport
from billing.services import overage
from tests.billing.helpers import C, balance, invoice_for, plan_price, subscription_for
from usage import services as usage_services
from usage.errors import InsufficientCredits
from usage.models import CreditAccount, Grant, GrantSource

pytestmark = pytest.mark.django_db


class WorkerKilled(BaseException):
    pass


@pytest.fixture
def on_pro(webhooks, fake_stripe, org, owner):
    sub = subscription_for(fake_stripe, org, "pro")
    webhooks.send("customer.subscription.created", sub)
    webhooks.send("invoice.paid", invoice_for(fake_stripe, sub))
    return sub


def test_a_subscription_on_an_overage_plan_includes_the_metered_price(stripe_account, fake_stripe, org, owner):
    services.checkout_start(org=org, kind="plan", code="pro", interval="year", actor=owner)

    params = fake_stripe.created["checkout.session.params"][-1]
    assert params["mode"] == "subscription"
    prices = [item["price"] for item in params["line_items"]]
    assert fake_stripe.get(prices[1])["recurring"]["usage_type"] == "metered"
    assert fake_stripe.get(prices[1])["recurring"]["interval"] == "year"
    assert "quantity" not in params["line_items"][1]


def test_usage_past_zero_is_reported_to_the_meter_in_whole_credits_and_settled(on_pro, fake_stripe, org,
                                                                               django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        usage_services.credits_debit(org=org, amount_micros=balance(org) + 2_500_000, idempotency_key="usage:big")

    event = next(iter(fake_stripe.meter_events.values()))
    assert event["event_name"] == "tollgate_overage_credits"
    assert event["payload"] == {"stripe_customer_id": on_pro["customer"], "value": "2"}
    report = OverageReport.objects.get()
    assert (report.credits, report.identifier) == (2, event["identifier"]) and report.sent_at is not None
    account = CreditAccount.objects.get(org=org)
    assert (account.debt_micros, account.balance_micros) == (500_000, -500_000)  # the fraction waits
    settled = Grant.objects.get(account=account, source=GrantSource.OVERAGE_INVOICED)
    assert (settled.amount_micros, settled.remaining_micros) == (2_000_000, 0)  # it only paid the debt off
    assert usage_services.ledger_reconcile(org_ids=[org.pk]) == []


def test_a_report_killed_after_sending_is_sent_again_with_its_identifier_and_counted_once(
        on_pro, fake_stripe, org, monkeypatch):
    usage_services.credits_debit(org=org, amount_micros=balance(org) + 3 * C, idempotency_key="usage:big")
    _killed_after_sending(org, monkeypatch)

    services.overage_report(org_id=org.pk)
    services.overage_report(org_id=org.pk)  # nothing left to report

    assert fake_stripe.count("POST", "/v1/billing/meter_events") == 2
    assert len(fake_stripe.meter_events) == 1
    assert OverageReport.objects.get().credits == 3
    assert CreditAccount.objects.get(org=org).debt_micros == 0


def _killed_after_sending(org, monkeypatch):
    real_settle = overage._settle
    monkeypatch.setattr(overage, "_settle", lambda report_id: (_ for _ in ()).throw(WorkerKilled()))
    with pytest.raises(WorkerKilled):
        services.overage_report(org_id=org.pk)
    monkeypatch.setattr(overage, "_settle", real_settle)


def _unreachable(**params):
    raise stripe.APIConnectionError("Stripe could not be reached")


def test_a_report_stripe_counted_is_not_sent_again_past_the_identifier_window(on_pro, fake_stripe, org,
                                                                               monkeypatch):
    usage_services.credits_debit(org=org, amount_micros=balance(org) + 3 * C, idempotency_key="usage:big")
    _killed_after_sending(org, monkeypatch)
    assert fake_stripe.metered(on_pro["customer"]) == 3

    with time_machine.travel(timezone.now() + timedelta(days=2)):
        fake_stripe.forget_keys()  # the identifier no longer protects a re-send
        services.overage_report(org_id=org.pk)

    assert fake_stripe.metered(on_pro["customer"]) == 3  # billed once
    assert fake_stripe.count("POST", "/v1/billing/meter_events") == 1
    assert fake_stripe.count("GET", "/v1/billing/meters/") == 1  # the event summaries
    assert OverageReport.objects.get().sent_at is not None
    assert CreditAccount.objects.get(org=org).debt_micros == 0


def test_a_report_stripe_never_got_is_sent_past_the_identifier_window(on_pro, fake_stripe, org, monkeypatch):
    usage_services.credits_debit(org=org, amount_micros=balance(org) + 3 * C, idempotency_key="usage:big")
    with monkeypatch.context() as patched, pytest.raises(stripe.APIConnectionError):
        patched.setattr(stripe.billing.MeterEvent, "create", _unreachable)
        services.overage_report(org_id=org.pk)
    assert fake_stripe.metered(on_pro["customer"]) == 0

    with time_machine.travel(timezone.now() + timedelta(days=2)):
        services.overage_report(org_id=org.pk)
        services.overage_report(org_id=org.pk)  # nothing left to report

    assert fake_stripe.metered(on_pro["customer"]) == 3
    assert OverageReport.objects.get().sent_at is not None
    assert CreditAccount.objects.get(org=org).debt_micros == 0


def test_an_earlier_report_in_the_same_minute_is_not_taken_for_this_one(on_pro, fake_stripe, org, monkeypatch):
    with time_machine.travel(timezone.now().replace(second=5), tick=False):
        usage_services.credits_debit(org=org, amount_micros=balance(org) + 2 * C, idempotency_key="usage:a")
        services.overage_report(org_id=org.pk)  # 2, sent and settled
        usage_services.credits_debit(org=org, amount_micros=2 * C, idempotency_key="usage:b")
        with monkeypatch.context() as patched, pytest.raises(stripe.APIConnectionError):
            patched.setattr(stripe.billing.MeterEvent, "create", _unreachable)
            services.overage_report(org_id=org.pk)

    with time_machine.travel(timezone.now() + timedelta(days=2)):
        fake_stripe.forget_keys()
        services.overage_report(org_id=org.pk)

    assert fake_stripe.metered(on_pro["customer"]) == 4
    assert not OverageReport.objects.filter(sent_at__isnull=True).exists()


def test_a_hard_limited_plan_reports_nothing(stripe_account, fake_stripe, org):
    services.billing_state_for(org)
    assert services.overage_report(org_id=org.pk) is None
    assert not fake_stripe.meter_events


# --- the metered item on the subscription ----------------------------------------


def overage_items_posted(fake) -> list[dict]:
    return [params for method, path, params in fake.calls if method == "POST" and path == "/v1/subscription_items"]


def overage_price_id(interval: str = "month") -> str:
    return OveragePrice.objects.get(interval=interval).stripe_price_id


def swap_plan(fake, sub: dict, plan: str) -> dict:
    """What the portal's plan change leaves in Stripe: the plan's item on the new price, other items untouched."""
    sub = fake.get(sub["id"])
    sub["items"]["data"][0]["price"] = fake.get(plan_price(plan).stripe_price_id)
    return sub


def test_an_upgrade_to_an_overage_plan_adds_the_metered_price_once(webhooks, fake_stripe, org, owner):
    sub = subscription_for(fake_stripe, org, "starter")
    webhooks.send("customer.subscription.created", sub)
    webhooks.send("invoice.paid", invoice_for(fake_stripe, sub))
    assert overage_items_posted(fake_stripe) == []  # Starter bills no overage

    webhooks.send("customer.subscription.updated", swap_plan(fake_stripe, sub, "pro"))

    assert overage_items_posted(fake_stripe) == [{"subscription": sub["id"], "price": overage_price_id()}]
    assert f"tollgate-overage-item-{sub['id']}-{overage_price_id()}" in fake_stripe.idempotent
    account = CreditAccount.objects.get(org=org)
    assert (account.plan_code, account.overage_allowed) == ("pro", True)

    # Redelivered, and the other events the change brings: the item is there now.
    webhooks.send("customer.subscription.updated", fake_stripe.get(sub["id"]))
    webhooks.send("invoice.paid", invoice_for(fake_stripe, fake_stripe.get(sub["id"])))
    assert len(overage_items_posted(fake_stripe)) == 1
    prices = [item["price"]["id"] for item in fake_stripe.get(sub["id"])["items"]["data"]]
    assert prices == [plan_price("pro").stripe_price_id, overage_price_id()]


def test_a_subscription_from_checkout_already_carries_the_metered_price(webhooks, fake_stripe, org, owner):
    sub = subscription_for(fake_stripe, org, "max", "year", with_overage=True)
    webhooks.send("customer.subscription.created", sub)
    webhooks.send("invoice.paid", invoice_for(fake_stripe, sub))

    assert overage_items_posted(fake_stripe) == []
    assert CreditAccount.objects.get(org=org).overage_allowed


def test_a_downgrade_keeps_the_metered_item_and_ends_overage(on_pro, webhooks, fake_stripe, org):
    assert len(overage_items_posted(fake_stripe)) == 1

    webhooks.send("customer.subscription.updated", swap_plan(fake_stripe, on_pro, "starter"))

    # Usage reported this period is still billed on the item; nothing more is reported.
    assert len(overage_items_posted(fake_stripe)) == 1
    assert fake_stripe.count("DELETE", "/v1/subscription_items") == 0
    account = CreditAccount.objects.get(org=org)
    assert (account.plan_code, account.overage_allowed) == ("starter", False)


@pytest.mark.parametrize("overage_price", ["", "price_retired"], ids=["not_synced", "refused_by_stripe"])
def test_an_overage_plan_without_the_metered_item_is_held_at_zero(webhooks, fake_stripe, org, owner,
                                                                   overage_price):
    OveragePrice.objects.filter(interval="month").update(stripe_price_id=overage_price)
    sub = subscription_for(fake_stripe, org, "pro")
    webhooks.send("customer.subscription.created", sub)
    webhooks.send("invoice.paid", invoice_for(fake_stripe, sub))

    account = CreditAccount.objects.get(org=org)
    assert (account.plan_code, account.overage_allowed) == ("pro", False)  # the plan applies, overage does not
    assert "price_retired" not in [item["price"]["id"] for item in fake_stripe.get(sub["id"])["items"]["data"]]
    with pytest.raises(InsufficientCredits):
        usage_services.credits_debit(org=org, amount_micros=balance(org) + C, idempotency_key="usage:big")
    assert services.overage_report(org_id=org.pk) is None
