"""The billing pages in a real browser: the flows people go through, each page
screenshotted at desktop and phone width and checked for accessibility."""

from __future__ import annotations

import csv
import re
from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from orgs.models import Role
from tests.billing.helpers import C, grant, spend
from tests.factories import PASSWORD, MembershipFactory, OrganizationFactory, UserFactory
from usage import services
from usage.models import GrantSource

pytestmark = pytest.mark.browser


def header_balance(page) -> tuple[str, str]:
    chip = page.get_by_test_id("header-balance")
    return chip.locator(".balance-amount").inner_text(), chip.get_attribute("data-status")


def test_sign_up_and_see_the_balance_page(open_session):
    s = open_session()
    page = s.go("/accounts/signup/")
    s.snap("signup")
    page.get_by_label("Work e-mail").fill("newcomer@example.test")
    page.get_by_label("Your name").fill("Nia Newcomer")
    page.get_by_label("Password").fill("short")
    page.get_by_role("button", name="Create account").click()
    expect(page.get_by_text("This password is too short.")).to_be_visible()
    s.snap("signup-errors")

    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Create account").click()
    page.wait_for_url(re.compile(r"/billing/$"))
    # Sign-up starts the 7-day Starter trial with its 250 credits.
    assert page.get_by_test_id("available").inner_text() == "250 credits"
    assert header_balance(page) == ("250 credits", "ok")
    expect(page.get_by_test_id("trial-left")).to_contain_text("7 days")
    expect(page.get_by_test_id("plan-status")).to_have_text("Trial")
    expect(page.get_by_test_id("allowance-card")).to_contain_text("0 of 250 credits used")
    assert page.get_by_test_id("top-up").first.get_attribute("href") == "/billing/top-up/"
    s.snap("overview-after-signup")


def test_an_empty_balance_says_so(open_session, org, owner):
    s = open_session().sign_in(owner)
    page = s.go("/billing/")
    expect(page.get_by_role("heading", name="Your balance is empty. Top up to continue.")).to_be_visible()
    assert header_balance(page) == ("0 credits", "depleted")
    s.snap("overview-empty")


def test_granted_credits_update_the_header_and_the_overview(open_session, org, owner, settings):
    settings.LOW_BALANCE_CREDITS = "100"
    s = open_session().sign_in(owner)
    grant(org, 40, GrantSource.TRIAL, expires_at=timezone.now() + timedelta(days=7))
    page = s.go("/billing/")
    expect(page.get_by_test_id("balance-low")).to_be_visible()
    assert header_balance(page) == ("40 credits", "low")
    s.snap("overview-low")

    grant(org, 12_345.5, GrantSource.PURCHASE)
    services.hold_create(org=org, amount_micros=345 * C)
    page.reload()
    assert header_balance(page) == ("12,040.5 credits", "ok")
    assert page.get_by_test_id("available").inner_text() == "12,040.5 credits"
    assert page.get_by_test_id("held").inner_text() == "345"
    assert page.get_by_test_id("tier-xl").inner_text() == "≈ 802"
    expect(page.get_by_text("worth $120.41 at list price")).to_be_visible()
    assert page.get_by_test_id("balance-low").count() == 0
    s.snap("overview")


def test_send_credits_to_another_user_who_then_sees_them(open_session, org, owner):
    from accounts.services import user_signup

    friend = user_signup(email="friend@example.test", password=PASSWORD, full_name="Fran Friend")
    grant(org, 500, GrantSource.PURCHASE)
    grant(org, 100, GrantSource.TRIAL)

    s = open_session().sign_in(owner)
    page = s.go("/billing/")
    page.get_by_test_id("send-button").click()
    page.wait_for_url(re.compile(r"/billing/send/$"))
    assert page.get_by_test_id("sendable").inner_text() == "500 credits"
    s.snap("send")

    page.get_by_label("Send to").fill("friend@example.test")
    page.get_by_label("Credits").fill("501")
    page.get_by_role("button", name="Review transfer").click()
    expect(page.get_by_text("You can send up to 500 credits")).to_be_visible()
    s.snap("send-errors")

    page.get_by_label("Credits").fill("120")
    page.get_by_label("Note (optional)").fill("Thanks for the great demo ☕")
    page.get_by_role("button", name="Review transfer").click()
    expect(page.get_by_test_id("confirm-recipient")).to_contain_text("Fran Friend")
    page.get_by_role("button", name="Confirm and send 120 credits").click()
    expect(page.get_by_text("Sent 120 credits to Fran Friend.")).to_be_visible()
    expect(page.get_by_test_id("sendable")).to_have_text("380 credits")
    assert header_balance(page)[0] == "480 credits"

    f = open_session().sign_in(friend)
    page = f.go("/billing/usage/")
    row = page.get_by_test_id("history").locator("tbody tr").first
    assert "From Acme" in row.inner_text()
    assert "Thanks for the great demo ☕" in row.inner_text()
    assert "+120" in row.inner_text()
    assert header_balance(page)[0] == "370 credits"  # the trial's 250 and the 120 received
    f.snap("usage-received")
    page = f.go("/billing/send/")
    assert page.get_by_test_id("sendable").inner_text() == "0 credits"  # received credits cannot be sent on


def test_a_member_without_billing_rights_sees_no_buy_or_send_buttons(open_session, org, owner, member):
    grant(org, 30, GrantSource.PURCHASE)
    s = open_session().sign_in(member)
    page = s.go("/billing/")
    assert page.get_by_test_id("top-up").count() == 0
    assert page.get_by_test_id("send-button").count() == 0
    assert page.get_by_role("link", name="Top up").count() == 0
    s.snap("overview-member")
    page = s.go("/billing/send/")
    assert page.get_by_test_id("send-form").count() == 0
    expect(page.get_by_text("Only owners, admins and billing managers of Acme can send credits.")).to_be_visible()
    s.snap("send-member")


def test_ledger_filters_pages_and_csv(open_session, org, owner, member, tmp_path, monkeypatch):
    from usage.selectors import history

    monkeypatch.setattr(history, "HISTORY_PAGE_SIZE", 10)
    grant(org, 1000, GrantSource.PURCHASE, reason="Pack of 1,000")
    for i in range(12):
        spend(org, 2.5, f"m{i}", member=member, reason=f"Medium action #{i}")
    for i in range(3):
        spend(org, 15, f"o{i}", member=owner, reason=f"XL action #{i}")
    other = OrganizationFactory(name="Globex", slug="globex")
    services.credits_transfer(from_org=org, to_org=other, amount_micros=10 * C, idempotency_key="t", note="Coffee on us")

    s = open_session().sign_in(owner)
    page = s.go("/billing/usage/")
    rows = page.get_by_test_id("history").locator("tbody tr")
    assert rows.count() == 10
    assert "To Globex" in rows.first.inner_text()
    s.snap("usage")
    page.get_by_role("link", name="Older →").click()
    page.wait_for_url(re.compile(r"older="))
    assert page.get_by_test_id("history").locator("tbody tr").count() == 7
    assert "Pack of 1,000" in page.get_by_test_id("history").inner_text()
    page.get_by_role("link", name="← Newer").click()
    page.wait_for_url(re.compile(r"newer="))
    assert page.get_by_test_id("history").locator("tbody tr").count() == 10

    page = s.go("/billing/usage/")
    page.get_by_label("Kind").select_option("usage")
    page.get_by_label("Member").select_option(label=member.get_full_name())
    page.get_by_role("button", name="Apply").click()
    page.wait_for_url(re.compile(r"kind=usage"))
    rows = page.get_by_test_id("history").locator("tbody tr")
    assert rows.count() == 10
    assert all("Medium action" in t for t in rows.all_inner_texts())
    s.snap("usage-filtered")

    with page.expect_download() as download_info:
        page.get_by_test_id("export-csv").click()
    path = tmp_path / "export.csv"
    download_info.value.save_as(path)
    with path.open(newline="") as f:
        table = list(csv.reader(f))
    assert len(table) == 13  # header + all 12 of the member's actions, not only the page shown
    assert {r[1] for r in table[1:]} == {"usage"} and {r[4] for r in table[1:]} == {"-2.5"}

    page.get_by_label("From", exact=True).fill("2099-01-02")
    page.get_by_label("To", exact=True).fill("2099-01-01")
    page.get_by_role("button", name="Apply").click()
    expect(page.get_by_text("The end date is before the start date.")).to_be_visible()
    expect(page.get_by_text("Nothing matches these filters.")).to_be_visible()
    s.snap("usage-filter-errors")


def test_an_empty_history_and_the_foundation_pages_look_right(open_session, org, owner, member):
    from orgs import services as org_services

    s = open_session().sign_in(owner)
    page = s.go("/billing/usage/")
    expect(page.get_by_text("No history yet.")).to_be_visible()
    s.snap("usage-empty")
    org_services.invitation_create(org=org, actor=owner, email="newhire@acme.test", role=Role.BILLING)
    s.go("/billing/members/")
    s.snap("members")
    page = s.go("/billing/api-keys/")
    page.get_by_label("Name").fill("workflow-runner")
    page.get_by_role("button", name="Create key").click()
    expect(page.get_by_text("Copy it now")).to_be_visible()
    s.snap("api-keys")
    s.go("/billing/orgs/")
    s.snap("org-list")
    s.go("/billing/orgs/new/")
    s.snap("org-create")
    response = s.page.goto("/billing/no-such-page/")
    assert response.status == 404
    s.snap("not-found")


def test_signed_out_pages_look_right(open_session, org, owner):
    from orgs import services as org_services

    _invite, token = org_services.invitation_create(org=org, actor=owner, email="newhire@acme.test")
    s = open_session()
    s.go("/accounts/login/")
    s.snap("login")
    s.page.get_by_label("E-mail").fill("owner@acme.test")
    s.page.get_by_label("Password").fill("wrong password")
    s.page.get_by_role("button", name="Sign in").click()
    s.snap("login-errors")
    s.go("/accounts/password-reset/")
    s.snap("password-reset")
    s.go(f"/billing/invitations/{token}/")
    s.snap("invitation")


def test_the_header_and_forms_work_by_keyboard(open_session, org, owner):
    grant(org, 50, GrantSource.PURCHASE)
    OrganizationFactory(name="Globex", slug="globex")
    s = open_session().sign_in(owner)
    page = s.go("/billing/send/")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    page.keyboard.press("Enter")
    page.get_by_label("Send to").focus()
    page.keyboard.type("globex")
    page.keyboard.press("Tab")
    page.keyboard.type("5")
    page.keyboard.press("Tab")
    page.keyboard.type("By keyboard")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Review transfer"
    page.keyboard.press("Enter")
    expect(page.get_by_test_id("send-confirm")).to_be_visible()
    for _ in range(40):  # the confirm button is reachable by Tab
        if page.evaluate("document.activeElement.textContent") == "Confirm and send 5 credits":
            break
        page.keyboard.press("Tab")
    else:
        raise AssertionError("Tab never reached the confirm button")
    page.keyboard.press("Enter")
    expect(page.get_by_text("Sent 5 credits to Globex.")).to_be_visible()
