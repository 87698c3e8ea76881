"""The business figures against a fixture computed by hand, in frozen time.

Catalog prices (billing/catalog.json, loaded by billing 0002): Starter $9.99 a
month, Pro $99.00 a month or $990.00 a year. So two Starter monthly and one
Pro yearly subscriptions bring 999 + 999 + 99000 / 12 = 10,248 cents a month:
MRR $102.48.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone
from decimal import Decimal
from io import StringIO

import pytest
import time_machine
from django.core.management import CommandError, call_command
from djstripe import models as djstripe_models

from backoffice.figures import selectors
from billing import services as billing_services
from billing.models import AttemptStatus, BillingState, BillingStateChange, Pack, PlanPrice, TopUpAttempt
from outbound.models import Delivery, DeliveryState, Event as OutboundEvent, WebhookEndpoint
from tests.factories import OrganizationFactory
from usage import services as usage_services
from usage.models import GrantSource, RunawayOccurrence
from usage.services import UsageInput

pytestmark = pytest.mark.usefixtures("catalog")

UTC = dt_timezone.utc
OCT = datetime(2026, 10, 10, 12, tzinfo=UTC)
NOV = datetime(2026, 11, 1, tzinfo=UTC)
NOW = datetime(2026, 11, 20, 12, tzinfo=UTC)
MICROS = 1_000_000


def price(plan: str, interval: str = "month") -> PlanPrice:
    return PlanPrice.objects.get(plan__code=plan, interval=interval)


def subscribe(org, plan: str, interval: str, at: datetime) -> None:
    with time_machine.travel(at, tick=False):
        billing_services.plan_simulate_subscribe(org=org, plan_price=price(plan, interval))


def cancel(org, at: datetime) -> None:
    with time_machine.travel(at, tick=False):
        billing_services.plan_simulate_cancel(org=org)


def report(month: str | None = None, at: datetime = NOW) -> selectors.Figures:
    with time_machine.travel(at, tick=False):
        return selectors.figures(selectors.period_for(month))


@pytest.fixture
def three_customers(db):
    """Two Starter monthly and one Pro yearly, all since October."""
    a, b, c = (OrganizationFactory(name=n, slug=n.lower()) for n in ("Acme", "Bolt", "Corto"))
    subscribe(a, "starter", "month", OCT)
    subscribe(b, "starter", "month", OCT + timedelta(hours=1))
    subscribe(c, "pro", "year", OCT + timedelta(hours=2))
    return a, b, c


def test_it_counts_two_starter_monthly_and_one_pro_yearly_as_102_48_of_mrr(three_customers):
    r = report().revenue
    assert r.mrr_cents == Decimal("10248.00")
    assert r.mrr_start_cents == Decimal("10248.00")
    assert (r.customers, r.customers_start) == (3, 3)
    assert selectors.figures_data(report())["mrr"]["mrr"] == "102.48"


def test_it_counts_new_customers_of_the_month_as_new_mrr(db):
    for n, (plan, interval) in enumerate([("starter", "month"), ("starter", "month"), ("pro", "year")]):
        subscribe(OrganizationFactory(), plan, interval, NOV + timedelta(days=2, hours=n))
    r = report().revenue
    assert (r.new.orgs, r.new.mrr_cents) == (3, Decimal("10248.00"))
    assert r.mrr_start_cents == 0 and r.customers_start == 0
    assert r.customer_churn_percent is None  # nothing to lose at the start


def test_a_cancellation_in_the_month_is_the_churn_computed_by_hand(three_customers):
    _, bolt, _ = three_customers
    cancel(bolt, NOV + timedelta(days=4))
    f = report()
    r = f.revenue
    # 10,248 - 999 = 9,249 cents.
    assert r.mrr_cents == Decimal("9249.00")
    assert (r.churned.orgs, r.churned.mrr_cents) == (1, Decimal("999.00"))
    # 1 of 3 customers; 999 of 10,248 cents = 9.748…% of MRR.
    assert r.customer_churn_percent == Decimal("33.3")
    assert r.revenue_churn_percent == Decimal("9.7")
    assert r.net_cents == Decimal("-999.00")
    data = selectors.figures_data(f)
    assert data["churn"] == {
        "customers_at_start": 3, "customers_lost": 1, "customer_churn_percent": "33.3",
        "mrr_at_start": "102.48", "mrr_lost": "9.99", "revenue_churn_percent": "9.7",
    }
    # October, seen whole: the three arrived, nobody left.
    october = report("2026-10").revenue
    assert (october.new.orgs, october.new.mrr_cents, october.churned.orgs) == (3, Decimal("10248.00"), 0)


def test_it_sorts_each_change_into_one_movement_and_they_add_up_to_the_net(three_customers):
    acme, _, corto = three_customers
    returning = OrganizationFactory()
    subscribe(returning, "starter", "month", datetime(2026, 9, 1, tzinfo=UTC))
    cancel(returning, OCT)
    subscribe(acme, "pro", "month", NOV + timedelta(days=1))  # 9.99 -> 99.00
    subscribe(corto, "starter", "month", NOV + timedelta(days=2))  # 82.50 -> 9.99
    subscribe(returning, "starter", "month", NOV + timedelta(days=3))  # back: 0 -> 9.99
    subscribe(OrganizationFactory(), "pro", "month", NOV + timedelta(days=4))  # new: 99.00
    r = report().revenue
    assert (r.expansion.orgs, r.expansion.mrr_cents) == (1, Decimal("8901.00"))
    assert (r.contraction.orgs, r.contraction.mrr_cents) == (1, Decimal("7251.00"))
    assert (r.reactivated.orgs, r.reactivated.mrr_cents) == (1, Decimal("999.00"))
    assert (r.new.orgs, r.new.mrr_cents) == (1, Decimal("9900.00"))
    assert r.churned.orgs == 0
    assert r.net_annual_cents == r.mrr_annual_cents - r.mrr_start_annual_cents
    # Acme Pro 9,900 + Bolt Starter 999 + Corto Starter 999 + the returning Starter 999 + the new Pro 9,900.
    assert r.mrr_cents == Decimal("22797.00")
    # Contraction is revenue lost too: 7,251 of 10,248 cents.
    assert r.revenue_churn_percent == Decimal("70.8")


def test_trials_are_not_revenue_and_conversion_counts_trials_that_ended(db):
    converts, lapses, still = OrganizationFactory(), OrganizationFactory(), OrganizationFactory()
    with time_machine.travel(NOV + timedelta(days=1), tick=False):
        for org in (converts, lapses):
            billing_services.trial_start(org=org)
    with time_machine.travel(NOV + timedelta(days=15), tick=False):
        billing_services.trial_start(org=still)
    subscribe(converts, "starter", "month", NOV + timedelta(days=3))
    with time_machine.travel(NOV + timedelta(days=9), tick=False):
        assert billing_services.trials_end() == 1
    f = report()
    assert (f.trials.ended, f.trials.converted, f.trials.running) == (2, 1, 1)
    assert f.trials.conversion_percent == Decimal("50.0")
    assert f.revenue.mrr_cents == Decimal("999.00")  # the running trial brings nothing


def _event(n: int, type_: str, invoice: str, at: datetime, paid: int = 0) -> None:
    djstripe_models.Event.objects.create(
        id=f"evt_{n}", type=type_, created=at, livemode=False,
        data={"object": {"id": invoice, "object": "invoice", "amount_paid": paid}},
    )


def _attempt(org, n: int, status: str, at: datetime, number: int = 1) -> None:
    pack = Pack.objects.get(code="pack_500")
    with time_machine.travel(at, tick=False):
        TopUpAttempt.objects.create(org=org, pack=pack, credits_micros=pack.credits_micros,
                                    amount_cents=pack.amount_cents, idempotency_key=f"topup-{n}", status=status,
                                    number=number)


def test_payment_failure_rate_counts_invoices_and_off_session_charges_of_the_last_30_days(db):
    org = OrganizationFactory()
    _event(1, "invoice.payment_failed", "in_1", NOW - timedelta(days=3))
    _event(2, "invoice.paid", "in_1", NOW - timedelta(days=1), paid=999)  # recovered
    _event(3, "invoice.paid", "in_2", NOW - timedelta(days=2), paid=999)
    _event(4, "invoice.payment_failed", "in_3", NOW - timedelta(days=5))
    _event(5, "invoice.paid", "in_4", NOW - timedelta(days=5), paid=0)  # a trial's $0 invoice: no attempt
    _event(6, "invoice.payment_failed", "in_5", NOW - timedelta(days=40))  # too old
    _attempt(org, 1, AttemptStatus.SUCCEEDED, NOW - timedelta(days=6))
    _attempt(org, 2, AttemptStatus.FAILED, NOW - timedelta(days=4))
    _attempt(org, 3, AttemptStatus.SUCCEEDED, NOW - timedelta(days=3), number=2)  # the retry worked
    _attempt(org, 4, AttemptStatus.CANCELED, NOW - timedelta(days=3))  # never charged
    p = report().payments
    assert (p.invoices_paid, p.invoices_failed, p.topups_succeeded, p.topups_failed) == (2, 2, 2, 1)
    # 3 failures of 7 attempts.
    assert (p.failures, p.attempts, p.failure_percent) == (3, 7, Decimal("42.9"))
    assert (p.recovered, p.recovered_cents) == (2, 999 + 500)


def test_credits_sold_granted_consumed_expired_clawed_back_and_outstanding(db, rate_card):
    buyer, spender = OrganizationFactory(), OrganizationFactory()
    with time_machine.travel(NOV + timedelta(days=2), tick=False):
        purchase = billing_services.pack_fulfil(org=buyer, pack=Pack.objects.get(code="pack_2000"),
                                                checkout_session_id="cs_1", simulated=True, actor="test")
        usage_services.credits_debit(org=buyer, amount_micros=300 * MICROS, idempotency_key="use-1")
        usage_services.credits_clawback(grant=purchase.grant, amount_micros=200 * MICROS, idempotency_key="claw-1")
        promo = usage_services.credits_grant(org=spender, amount_micros=40 * MICROS, source=GrantSource.PROMO,
                                             idempotency_key="promo-1").grant
        usage_services.grant_expire_now(grant=promo, reason="test")
    subscribe(spender, "starter", "month", NOV + timedelta(days=3))
    c = report().credits
    assert (c.sold_micros, c.sold_cents, c.purchases) == (2000 * MICROS, 1800, 1)
    assert c.plans_micros == 1000 * MICROS  # Starter's monthly allowance
    assert c.promo_micros == 40 * MICROS
    assert (c.consumed_micros, c.clawed_back_micros, c.expired_micros) == (300 * MICROS, 200 * MICROS, 40 * MICROS)
    # The buyer keeps 2,000 - 300 - 200; the spender its allowance.
    assert c.outstanding_micros == (1500 + 1000) * MICROS
    assert c.paid_outstanding_micros == 1500 * MICROS
    assert c.outstanding_value == Decimal("25.00")
    data = selectors.figures_data(report())["credits"]
    assert (data["sold"], data["sold_amount"], data["outstanding"], data["outstanding_value"]) == (
        "2000", "18.00", "2500", "25.00")


def test_usage_patterns_by_meter_by_model_top_organizations_and_flagged(db, rate_card):
    big, small = OrganizationFactory(name="Big", slug="big"), OrganizationFactory(name="Small", slug="small")
    with time_machine.travel(NOW - timedelta(days=3), tick=False):
        for org in (big, small):
            usage_services.credits_grant(org=org, amount_micros=10_000 * MICROS, source=GrantSource.PURCHASE,
                                         idempotency_key="seed")
        for n, (org, meter, model, quantity) in enumerate([
            (big, "ai.output_tokens", "gpt-5-mini", "100000"), (big, "compute.seconds", "", "600"),
            (small, "ai.output_tokens", "gpt-5-mini", "1000"),
        ]):
            usage_services.usage_record(org=org, event=UsageInput(
                idempotency_key=f"u{n}", meter=meter, model=model, quantity=Decimal(quantity)))
        RunawayOccurrence.objects.create(
            org=small, hour=NOW - timedelta(days=3), window_start=NOW - timedelta(days=3, hours=1),
            window_end=NOW - timedelta(days=3), spend_micros=5 * MICROS, baseline_micros=0, baseline_hours=1,
            multiple=10, created_at=NOW - timedelta(days=3))
    usage_services.usage_rollup()  # part rolled up, part in the tail: counted once either way
    u = report().patterns
    assert [o.slug for o in u.top_orgs] == ["big", "small"]
    assert u.by_meter.total_micros == u.by_model.total_micros == sum(o.credits_micros for o in u.top_orgs) > 0
    assert {s.label for s in u.by_model.series} == {"gpt-5-mini", "No model"}
    assert len(u.by_meter.series) == 2 and len(u.by_meter.days) == 30
    assert [x.slug for x in u.flagged] == ["small"]


def test_health_counts_stripe_webhooks_and_failing_outbound_deliveries(db):
    def trigger(valid=True, processed=True, exception="", age=timedelta(hours=1)):
        row = djstripe_models.WebhookEventTrigger.objects.create(
            remote_ip="127.0.0.1", headers={}, body="{}", valid=valid, processed=processed, exception=exception)
        djstripe_models.WebhookEventTrigger.objects.filter(pk=row.pk).update(created=NOW - age)

    trigger(age=timedelta(minutes=30))
    trigger(valid=False, age=timedelta(days=2))
    trigger(exception="KeyError", age=timedelta(days=3))
    trigger(processed=False, age=timedelta(hours=2))  # stuck
    trigger(processed=False, age=timedelta(minutes=1))  # in flight
    org = OrganizationFactory()
    endpoint = WebhookEndpoint.objects.create(org=org, url="https://hooks.example.test/", events=["*"], secret="s",
                                              failing_since=NOW - timedelta(hours=5))
    event = OutboundEvent.objects.create(public_id="evt_out_1", org=org, type="balance.low", key="k", sequence=1,
                                         payload={}, created_at=NOW - timedelta(days=1))
    Delivery.objects.create(event=event, endpoint=endpoint, state=DeliveryState.FAILED, attempts=12,
                            created_at=NOW - timedelta(days=1))
    h = report().health
    assert (h.webhooks_24h, h.webhooks_30d, h.webhooks_failed_30d, h.webhooks_unprocessed) == (3, 5, 2, 1)
    assert h.last_webhook_age == timedelta(minutes=1)
    assert (h.outbound_failed_30d, h.endpoints_failing, h.endpoints_disabled) == (1, 1, 0)


def test_billing_report_json_is_the_dashboards_figures(three_customers, admin_client):
    cancel(three_customers[1], NOV + timedelta(days=4))
    out = StringIO()
    with time_machine.travel(NOW, tick=False):
        call_command("billing_report", "--json", stdout=out)
        page = admin_client.get("/admin/backoffice/figures/")
    printed = json.loads(out.getvalue())
    assert printed == selectors.figures_data(page.context["f"])
    assert printed["mrr"]["mrr"] == "92.49" and printed["month"] == "2026-11"
    assert "$92.49" in page.content.decode()


def test_billing_report_reads_a_past_month_and_refuses_a_bad_one(three_customers):
    out = StringIO()
    with time_machine.travel(NOW, tick=False):
        call_command("billing_report", "--month", "2026-10", stdout=out)
        with pytest.raises(CommandError, match="YYYY-MM"):
            call_command("billing_report", "--month", "October")
        with pytest.raises(CommandError, match="not begun"):
            call_command("billing_report", "--month", "2027-01")
    text = out.getvalue()
    assert "Business figures for 2026-10" in text and "MRR                 102.48 (3 paying" in text


def test_the_history_records_every_change_of_plan_status_or_interval_and_nothing_else(db):
    org = OrganizationFactory()
    with time_machine.travel(NOV, tick=False):
        state = BillingState.objects.create(org=org)
        state.grace_ends_at = NOV  # not a change the history keeps
        state.save()
    later = NOV + timedelta(days=1)
    BillingState.objects.filter(pk=state.pk).update(plan_code="pro", status="active", interval="year", updated_at=later)
    rows = list(BillingStateChange.objects.filter(org=org).order_by("id").values_list(
        "previous_status", "status", "plan_code", "annual_cents", "changed_at"))
    assert rows[0] == ("", "free", "free", 0, NOV)
    assert rows[1] == ("free", "active", "pro", 99000, later)
    assert len(rows) == 2
