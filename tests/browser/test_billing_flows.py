"""The billing flows of issue 5 in a real browser: a simulated top-up, usage
recorded through the API showing in the chart and the history, auto top-up
settings, plans, invoices and every settings page, each screenshotted at
desktop and phone width and checked with axe."""

from __future__ import annotations

import json
import re
import urllib.request
from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from billing import services
from orgs.models import Role
from tests.billing.helpers import C, grant, spend
from tests.factories import MembershipFactory, UserFactory, api_key_for
from usage import services as usage_services
from usage.models import GrantSource, Provider

pytestmark = pytest.mark.browser


def header_amount(page) -> str:
    return page.get_by_test_id("header-balance").locator(".balance-amount").inner_text()


@pytest.fixture
def simulated(settings):
    settings.BILLING_SIMULATED_PAYMENTS = True


def test_a_simulated_top_up_raises_the_balance(simulated, open_session, org, owner):
    services.billing_state_for(org)  # on Free: 50 credits
    grant(org, 40, GrantSource.PURCHASE)
    s = open_session().sign_in(owner)
    page = s.go("/billing/")
    page.get_by_test_id("top-up").first.click()
    page.wait_for_url(re.compile(r"/billing/top-up/$"))
    expect(page.get_by_text("Demo mode: payments are simulated.")).to_be_visible()
    s.snap("top-up")

    # A custom amount outside the limits is explained next to the field.
    page.get_by_label("Credits").fill("20")
    page.get_by_role("button", name="Continue to payment (simulated)").click()
    expect(page.get_by_test_id("custom-form").get_by_text("Buy between 500 and 100,000 credits at a time.")).to_be_visible()
    s.snap("top-up-errors")

    page.get_by_label("Credits").fill("1,500")
    expect(page.get_by_test_id("custom-price")).to_have_text("$15.00")
    page.get_by_role("button", name="Continue to payment (simulated)").click()
    page.wait_for_url(re.compile(r"/billing/checkout/simulate/"))
    expect(page.get_by_text("1,500 credits for $15.00")).to_be_visible()
    s.snap("simulated-payment")
    page.get_by_test_id("simulated-pay").click()
    page.wait_for_url(re.compile(r"/billing/checkout/done/"))
    expect(page.get_by_role("heading", name="Credits added")).to_be_visible()
    expect(page.get_by_test_id("credited-balance")).to_contain_text("1,590")
    assert header_amount(page) == "1,590 credits"
    s.snap("checkout-done")

    page = s.go("/billing/top-up/")
    page.get_by_test_id("buy-pack_2000").click()
    page.get_by_test_id("simulated-pay").click()
    page.wait_for_url(re.compile(r"/billing/checkout/done/"))
    assert header_amount(page) == "3,590 credits"


def test_the_custom_price_preview_rounds_half_up_like_the_server(simulated, open_session, owner, settings):
    """650 credits at $0.0035 are $2.275: the server charges $2.28, and so must
    the preview (a float sum gives 227.49999… cents, $2.27)."""
    settings.CREDIT_PRICE = "0.0035"
    s = open_session().sign_in(owner)
    page = s.go("/billing/top-up/")
    page.get_by_label("Credits").fill("650")
    expect(page.get_by_test_id("custom-price")).to_have_text("$2.28")
    page.get_by_role("button", name="Continue to payment (simulated)").click()
    page.wait_for_url(re.compile(r"/billing/checkout/simulate/"))
    expect(page.get_by_text("650 credits for $2.28")).to_be_visible()


def test_the_return_page_turns_complete_when_the_payment_lands(open_session, org, owner, settings):
    """The page polls: it is open, pending, when the webhook's fulfilment lands."""
    settings.BILLING_SIMULATED_PAYMENTS = True
    result = services.checkout_start(org=org, kind="pack", code="pack_500", actor=owner, return_to="top_up")
    s = open_session().sign_in(owner)
    page = s.go(f"/billing/checkout/done/?session_id={result.session_id}")
    expect(page.get_by_role("heading", name="Confirming your payment…")).to_be_visible()
    s.snap("checkout-pending")

    services.checkout_simulate_pay(org=org, session_id=result.session_id, actor=owner)  # as the webhook would

    expect(page.get_by_role("heading", name="Credits added")).to_be_visible(timeout=15_000)
    expect(page.get_by_test_id("credited-balance")).to_contain_text("550")  # with Free's 50
    s.page.goto("/billing/checkout/canceled/?return_to=top_up")
    s.snap("checkout-canceled")


def post_json(url: str, key: str, body: dict) -> dict:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST", headers={
        "Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status in (200, 201), response.status
        return json.loads(response.read())


def test_usage_recorded_through_the_api_shows_in_the_chart_and_the_history(open_session, live_server, org, owner, member):
    grant(org, 5_000, GrantSource.PURCHASE)
    _key, secret = api_key_for(org)
    base = live_server.url + "/api/v1/usage/events"
    post_json(base, secret, {"idempotency_key": "run-1-action", "meter": "action.large", "quantity": "2",
                             "member": member.email, "workflow_run_id": "run-2026-0001"})
    post_json(base + "/batch", secret, {"events": [
        {"idempotency_key": "run-1-tokens", "meter": "ai.output_tokens", "model": "gpt-5-mini", "quantity": "200000",
         "member": member.email, "workflow_run_id": "run-2026-0001"},
        {"idempotency_key": "run-2-xl", "meter": "action.xl", "quantity": "1", "member": owner.email,
         "workflow_run_id": "run-2026-0002"},
    ]})

    s = open_session().sign_in(owner)
    page = s.go("/billing/usage/")
    expect(page.get_by_test_id("chart-total")).to_have_text("85 credits")  # 10 + 60 + 15
    page.wait_for_function("() => window.Chart && Chart.getChart(document.getElementById('usage-chart'))")
    datasets = page.evaluate("Chart.getChart(document.getElementById('usage-chart')).data.datasets"
                             ".map(d => [d.label, d.data.map(Number).reduce((a, b) => a + b, 0)])")
    assert sorted(datasets) == [["AI output tokens", 60], ["Extra-large action", 15], ["Large action", 10]]
    breakdown = page.get_by_test_id("chart-breakdown").inner_text()
    assert "AI output tokens" in breakdown and "71%" in breakdown
    history = page.get_by_test_id("history").inner_text()
    # the single event, then the batch's one entry per member
    assert "−10" in history and "−60" in history and "−15" in history
    runs = page.get_by_test_id("workflow-runs").inner_text()
    assert "run-2026-0001" in runs and "70" in runs
    s.snap("usage-charts")

    page.get_by_label("Broken down by").select_option("member")
    page.get_by_label("Period").select_option("month")
    page.get_by_role("button", name="Show").click()
    page.wait_for_url(re.compile(r"by=member"))
    page.wait_for_function("() => window.Chart && Chart.getChart(document.getElementById('usage-chart'))")
    labels = page.evaluate("Chart.getChart(document.getElementById('usage-chart')).data.datasets.map(d => d.label)")
    assert sorted(labels) == sorted([member.get_full_name(), owner.get_full_name()])
    page.get_by_text("The chart as a table").click()
    expect(page.get_by_test_id("chart-table")).to_be_visible()
    s.snap("usage-charts-by-member")

    page = s.go("/billing/usage/?chart=week&by=workflow_run")
    expect(page.get_by_test_id("chart-breakdown")).to_contain_text("run-2026-0001")
    s.snap("usage-charts-by-run")


def test_changing_the_auto_top_up_settings(simulated, open_session, org, owner):
    grant(org, 800, GrantSource.PURCHASE)
    s = open_session().sign_in(owner)
    page = s.go("/billing/settings/")
    page.wait_for_url(re.compile(r"/billing/settings/auto-top-up/$"))
    expect(page.get_by_test_id("auto-status")).to_have_text("Off")
    s.snap("settings-auto-top-up")

    page.get_by_label("Top up automatically").check()
    page.get_by_label("When the balance falls below").fill("1000")
    page.get_by_label("Buy this pack").select_option("pack_5000")
    page.get_by_label("Monthly cap").fill("20")
    page.get_by_role("button", name="Save auto top-up").click()
    expect(page.get_by_text("Allow at least one pack: $40.00.")).to_be_visible()
    s.snap("settings-auto-top-up-errors")

    page.get_by_label("Monthly cap").fill("120")
    page.get_by_role("button", name="Save auto top-up").click()
    expect(page.get_by_text("Auto top-up is on.")).to_be_visible()
    expect(page.get_by_test_id("auto-status")).to_have_text("On")
    # Already below the new line: the (simulated) top-up ran at once.
    expect(page.get_by_test_id("auto-spent")).to_have_text("$40.00")
    expect(page.get_by_label("When the balance falls below")).to_have_value("1000")
    expect(page.get_by_label("Buy this pack")).to_have_value("pack_5000")
    assert header_amount(page) == "5,800 credits"
    s.snap("settings-auto-top-up-on")
    page = s.go("/billing/")
    expect(page.get_by_test_id("auto-topup-card")).to_contain_text("buys 5,000 credits below 1,000")


def test_plans_alerts_provider_keys_and_members(simulated, open_session, org, owner, member):
    services.trial_start(org=org)
    spend(org, 210, "trial-usage", member=member)  # 84% of the trial's 250
    s = open_session().sign_in(owner)
    page = s.go("/billing/")
    expect(page.get_by_test_id("allowance-bar")).to_have_attribute("data-level", "warn")
    expect(page.get_by_test_id("trial-left")).to_contain_text("7 days")
    s.snap("overview-trial")

    page = s.go("/billing/plans/")
    expect(page.get_by_test_id("plan-starter").get_by_test_id("current-plan")).to_be_visible()
    s.snap("plans")
    page.get_by_test_id("interval-year").click()
    page.wait_for_url(re.compile(r"interval=year"))
    expect(page.get_by_test_id("plan-pro")).to_contain_text("$990.00")
    s.snap("plans-yearly")
    page.get_by_test_id("choose-pro").click()
    page.get_by_test_id("simulated-pay").click()
    page.wait_for_url(re.compile(r"/billing/checkout/done/"))
    expect(page.get_by_role("heading", name="You are on Pro")).to_be_visible()
    page = s.go("/billing/plans/")
    expect(page.get_by_test_id("plan-pro").get_by_test_id("current-plan")).to_be_visible()
    expect(page.get_by_test_id("choose-max")).to_have_text(re.compile("Upgrade to Max"))
    s.snap("plans-subscribed")

    page = s.go("/billing/settings/alerts/")
    page.get_by_label("Low-balance line").fill("250")
    page.get_by_role("button", name="Save the line").click()
    expect(page.get_by_text("The balance now shows as low below 250 credits.")).to_be_visible()
    page.get_by_label("When 80% of the allowance is used").uncheck()
    page.get_by_role("button", name="Save my alerts").click()
    expect(page.get_by_text("Your allowance alerts are saved.")).to_be_visible()
    expect(page.get_by_label("When 80% of the allowance is used")).not_to_be_checked()
    s.snap("settings-alerts")

    page = s.go("/billing/settings/provider-keys/")
    expect(page.get_by_text("No provider keys.")).to_be_visible()
    page.get_by_label("Provider", exact=True).select_option("openai")
    page.get_by_label("Label").fill("Production agents")
    page.get_by_label("Last four characters").fill("Zq7w")
    page.get_by_role("button", name="Register key").click()
    expect(page.get_by_test_id("provider-keys")).to_contain_text("…Zq7w")
    s.snap("settings-provider-keys")

    page = s.go("/billing/members/")
    expect(page.get_by_test_id(f"spent-{member.pk}")).to_have_text("210")
    page.get_by_label(f"Monthly cap of {member.email} in credits").fill("500")
    page.get_by_role("button", name=f"Save the cap of {member.email}").click()
    expect(page.get_by_text(f"{member.email} may now spend up to 500 credits a month.")).to_be_visible()
    s.snap("settings-members")
    s.go("/billing/api-keys/")
    s.snap("settings-api-keys")
    s.go("/billing/invoices/")
    s.snap("invoices-simulated")


def test_a_member_without_billing_rights_sees_no_buy_buttons_anywhere(simulated, open_session, org, owner, member):
    grant(org, 30, GrantSource.PURCHASE)
    services.auto_topup_configure(org=org, enabled=True, threshold_micros=10 * C, pack_code="pack_500",
                                  monthly_cap_cents=1000)
    s = open_session().sign_in(member)
    for path, name in [("/billing/top-up/", "top-up-member"), ("/billing/plans/", "plans-member"),
                       ("/billing/settings/auto-top-up/", "settings-auto-top-up-member"),
                       ("/billing/settings/alerts/", "settings-alerts-member"),
                       ("/billing/settings/provider-keys/", "settings-provider-keys-member")]:
        page = s.go(path)
        assert page.get_by_role("button", name=re.compile(r"^(Buy|Choose|Upgrade|Downgrade|Continue to payment|"
                                                         r"Save auto top-up|Save the line|Register key)")).count() == 0, path
        s.snap(name)
    expect(page.get_by_text("Only owners, admins and billing managers of Acme can register or revoke provider keys.")).to_be_visible()
    page = s.go("/billing/settings/alerts/")
    page.get_by_label("When 95% of the allowance is used").check()
    page.get_by_role("button", name="Save my alerts").click()
    expect(page.get_by_text("Your allowance alerts are saved.")).to_be_visible()


def test_a_failed_payment_and_an_empty_balance_on_the_overview(open_session, org, owner):
    from billing.models import BillingState

    services.billing_state_for(org)
    BillingState.objects.filter(org=org).update(status="past_due", plan_code="pro",
                                                grace_ends_at=timezone.now() + timedelta(days=4))
    s = open_session().sign_in(owner)
    usage_services.credits_debit(org=org, amount_micros=50 * C, idempotency_key="free", reason="Used the Free credits")
    page = s.go("/billing/")
    expect(page.get_by_test_id("grace-warning")).to_be_visible()
    expect(page.get_by_role("heading", name="Your balance is empty. Top up to continue.")).to_be_visible()
    s.snap("overview-grace")


def test_invoices_from_stripe(open_session, org, owner, webhooks, fake_stripe):
    from tests.billing import stripe_builders as b
    from tests.billing.helpers import invoice_for, subscription_for

    sub = subscription_for(fake_stripe, org, "pro")
    webhooks.send("customer.subscription.created", sub)
    webhooks.send("invoice.paid", invoice_for(fake_stripe, sub, created=b.now() - 86400 * 30))
    webhooks.send("invoice.paid", invoice_for(fake_stripe, sub))
    s = open_session().sign_in(owner)
    page = s.go("/billing/invoices/")
    expect(page.get_by_test_id("invoices").locator("tbody tr")).to_have_count(2)
    expect(page.get_by_test_id("invoices")).to_contain_text("$99.00")
    s.snap("invoices")
    page = s.go("/billing/plans/")
    expect(page.get_by_test_id("portal")).to_be_visible()
    expect(page.get_by_test_id("choose-max")).to_have_text(re.compile("Upgrade to Max"))
    s.snap("plans-stripe")


def test_a_billing_manager_can_buy(simulated, open_session, org):
    manager = MembershipFactory(org=org, role=Role.BILLING, user=UserFactory(email="billing@acme.test")).user
    usage_services.provider_key_create(org=org, provider=Provider.ANTHROPIC, label="Support bot", last_four="x9Q2")
    s = open_session().sign_in(manager)
    page = s.go("/billing/top-up/")
    expect(page.get_by_test_id("buy-pack_500")).to_be_visible()
    page = s.go("/billing/settings/provider-keys/")
    expect(page.get_by_role("button", name="Revoke Support bot")).to_be_visible()
