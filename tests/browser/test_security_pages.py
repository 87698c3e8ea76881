"""What people see when a limit stops them, and the send-credits confirmation."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.billing.helpers import grant
from tests.factories import PASSWORD, OrganizationFactory, UserFactory
from usage.models import GrantSource

pytestmark = pytest.mark.browser


def test_too_many_wrong_passwords_say_so_on_the_sign_in_page(open_session):
    user = UserFactory(email="pat@example.test")
    s = open_session()
    page = s.go("/accounts/login/")
    for _ in range(5):
        page.get_by_label("E-mail").fill(user.email)
        page.get_by_label("Password").fill("not the password")
        page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("Too many failed sign-ins for this account. Try again in 15 minutes")
    expect(page.get_by_role("link", name="Forgot your password?")).to_be_visible()
    s.snap("login-locked")

    # The right password does not get in until the cool-off is over.
    page.get_by_label("E-mail").fill(user.email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("Too many failed sign-ins")
    assert re.search(r"/accounts/login/$", page.url)


def test_sending_credits_shows_every_error_at_once_then_asks_to_confirm(open_session, org, owner):
    grant(org, 60, GrantSource.PURCHASE)
    OrganizationFactory(name="Globex Research", slug="globex")
    s = open_session().sign_in(owner)
    page = s.go("/billing/send/")
    page.get_by_label("Send to").fill("nobody@example.test")
    page.get_by_label("Credits").fill("61")
    page.get_by_label("Note (optional)").evaluate("(el) => el.removeAttribute('maxlength')")
    page.get_by_label("Note (optional)").fill("x" * 281)
    page.get_by_role("button", name="Review transfer").click()
    form = page.get_by_test_id("send-form")
    expect(form).to_contain_text("We can’t send credits to this e-mail.")
    expect(form).to_contain_text("You can send up to 60 credits")
    expect(form).to_contain_text("at most 280 characters")
    s.snap("send-all-errors")

    page.get_by_label("Send to").fill("globex")
    page.get_by_label("Credits").fill("25")
    page.get_by_label("Note (optional)").fill("For the lab")
    page.get_by_role("button", name="Review transfer").click()
    confirm = page.get_by_test_id("send-confirm")
    expect(confirm.get_by_role("heading")).to_have_text("Send 25 credits to Globex Research?")
    expect(page.get_by_test_id("confirm-recipient")).to_contain_text("team organization “globex”")
    assert page.get_by_test_id("sendable").count() == 0  # nothing sent yet: not the send page
    s.snap("send-confirm")

    page.get_by_role("button", name="Change").click()
    expect(page.get_by_label("Credits")).to_have_value("25")
    page.get_by_label("Credits").fill("20")
    page.get_by_role("button", name="Review transfer").click()
    page.get_by_role("button", name="Confirm and send 20 credits").click()
    expect(page.get_by_text("Sent 20 credits to Globex Research.")).to_be_visible()
    expect(page.get_by_test_id("sendable")).to_have_text("40 credits")
