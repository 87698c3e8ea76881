"""The staff's Business figures page in a real browser: the figures, both usage
charts drawn by the vendored Chart.js with their tables, and the front page's panel."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from billing import services as billing_services
from billing.models import PlanPrice
from tests.factories import OrganizationFactory, UserFactory
from usage import services as usage_services
from usage.models import GrantSource, RunawayOccurrence
from usage.services import UsageInput

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_staff_see_mrr_charts_and_tables_and_the_front_page_panel(open_session):
    staff = UserFactory(email="finance@example.test", is_staff=True, is_superuser=True)
    customers = [OrganizationFactory(name=name) for name in ("Acme Robotics", "Bolt Labs", "Corto AI")]
    for org, (plan, interval) in zip(customers, [("starter", "month"), ("starter", "month"), ("pro", "year")]):
        billing_services.plan_simulate_subscribe(org=org, plan_price=PlanPrice.objects.get(plan__code=plan, interval=interval))
    for n, (org, meter, model, quantity) in enumerate([
        (customers[0], "ai.output_tokens", "gpt-5-mini", "200000"), (customers[1], "compute.seconds", "", "900"),
        (customers[2], "ai.output_tokens", "gpt-5-mini", "50000"), (customers[2], "action.small", "", "40"),
    ]):
        usage_services.usage_record(org=org, event=UsageInput(
            idempotency_key=f"b{n}", meter=meter, model=model, quantity=Decimal(quantity),
            occurred_at=timezone.now() - timedelta(days=n * 3)))
    usage_services.credits_grant(org=customers[1], amount_micros=10**9, source=GrantSource.PROMO,
                                 idempotency_key="promo")
    now = timezone.now()
    RunawayOccurrence.objects.create(
        org=customers[1], hour=now.replace(minute=0, second=0, microsecond=0), window_start=now - timedelta(hours=1),
        window_end=now, spend_micros=900_000_000, baseline_micros=4_000_000, baseline_hours=168, multiple=10,
        created_at=now)

    s = open_session().sign_in(staff)
    page = s.go("/admin/backoffice/figures/")
    expect(page.get_by_test_id("mrr")).to_have_text("$102.48")
    expect(page.get_by_test_id("figures-mrr")).to_contain_text("3 paying organizations")
    for chart in ("meter", "model"):
        expect(page.get_by_test_id(f"chart-{chart}")).to_be_visible()
        # Chart.js took the canvas over (it sizes it), so the chart was drawn.
        page.wait_for_function(f"() => window.Chart && Chart.getChart(document.querySelector('[data-testid=chart-{chart}]'))")
    expect(page.get_by_test_id("table-model")).to_contain_text("gpt-5-mini")
    expect(page.get_by_test_id("figures-top")).to_contain_text("Acme Robotics")
    expect(page.get_by_test_id("figures-flagged")).to_contain_text("Bolt Labs")
    s.snap("backoffice-figures")

    page = s.go("/admin/")
    expect(page.get_by_test_id("panel-mrr")).to_contain_text("$102.48")
    s.snap("admin-home-figures-panel")
