"""What people see when a limit stops them, and the send-credits confirmation."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.factories import PASSWORD, UserFactory

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
