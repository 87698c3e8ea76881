"""The back office's customer page in a browser: a finance person finds the
customer from the admin's front page, reads every block, and pauses its usage
with a reason; support sees the page without the action buttons."""

import pytest
from playwright.sync_api import expect

from orgs.models import AuditEvent, Organization
from tests.backoffice.conftest import customer, finance, roles, staff_in, support  # noqa: F401

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_finance_finds_a_customer_reads_the_page_and_pauses_its_usage(open_session, customer, finance):  # noqa: F811
    org = customer["org"]
    s = open_session().sign_in(finance)
    page = s.go("/admin/")
    page.get_by_label("E-mail, slug, name or Stripe customer id").fill("owner@acme.test")
    page.get_by_role("button", name="Find").click()
    page.get_by_role("link", name="Acme").click()
    expect(page.get_by_role("heading", name="Credits", exact=True)).to_be_visible()
    for heading in ["Members and roles", "Plan and status", "Grants with credits left", "Latest ledger entries",
                    "Open holds", "Purchases", "Invoices", "Refunds and disputes", "Auto top-up",
                    "Notifications sent", "Stripe events about its customer", "Audit trail"]:
        expect(page.get_by_role("heading", name=heading, exact=True)).to_be_visible()
    expect(page.locator("#holds")).to_contain_text("run-42")
    s.snap("backoffice-customer-page")

    pause = page.locator("#action-pause")
    pause.get_by_label("Reason").fill("Chargebacks under review")
    pause.get_by_role("button", name="Pause usage").click()

    expect(page.get_by_text("is paused: its usage events and holds are refused")).to_be_visible()
    expect(page.locator("#usage-paused")).to_contain_text("Chargebacks under review")
    s.snap("backoffice-customer-paused")
    assert Organization.objects.get(pk=org.pk).usage_paused_at is not None
    assert AuditEvent.objects.filter(org=org, action="org.usage_paused", actor_user_id=finance.pk).exists()


def test_support_reads_the_page_without_action_buttons(open_session, customer, support):  # noqa: F811
    s = open_session().sign_in(support)
    page = s.go(f"/admin/backoffice/customers/{customer['org'].pk}/")

    expect(page.locator("#credits")).to_contain_text("credits")
    expect(page.get_by_role("button", name="Pause usage")).to_have_count(0)
    expect(page.get_by_text("Your role may not do this").first).to_be_visible()
