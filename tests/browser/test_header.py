"""The header of every signed-in page: the organization switcher, and a bar
that stays on one line at desktop width."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.billing.helpers import grant
from tests.factories import MembershipFactory, OrganizationFactory
from usage.models import GrantSource

pytestmark = pytest.mark.browser

# Tops of the header bar's three parts and the height of its navigation: one
# line when they share a top and the navigation is one link high.
_HEADER_LINES = """() => {
  const box = s => document.querySelector(s).getBoundingClientRect();
  const link = box(".main-nav a");
  return {tops: [".logo", ".main-nav", ".header-right"].map(s => Math.round(box(s).top)),
          nav: Math.round(box(".main-nav").height), link: Math.round(link.height),
          right: Math.round(box(".header-right").height),
          widths: [".bar", ".logo", ".main-nav", ".header-right"].map(s => Math.round(box(s).width))};
}"""


def test_the_organization_switcher_opens_a_menu_and_switches(open_session, org, owner):
    MembershipFactory(org=OrganizationFactory(name="Globex", slug="globex"), user=owner, role="member")
    s = open_session().sign_in(owner)
    page = s.go("/billing/")
    switcher = page.get_by_role("button", name=re.compile(r"Organization: .*switch"))
    expect(switcher).to_be_visible()
    current = switcher.inner_text()
    other = "Acme" if "Globex" in current else "Globex"
    switcher.click()
    menu = page.get_by_role("list", name="Your organizations")
    expect(menu).to_be_visible()
    expect(menu.get_by_text("current")).to_be_visible()
    s.snap("org-switcher-open")
    menu.get_by_role("button", name=f"Switch to {other}").click()
    expect(page.get_by_text(f"Now working in {other}.")).to_be_visible()
    expect(page.get_by_role("button", name=re.compile(r"Organization: .*switch"))).to_contain_text(other)


def test_the_header_stays_on_one_line_at_1280_px_with_a_four_digit_balance(open_session, org, owner):
    org.name = "Acme Robotics International"
    org.save()
    grant(org, 8_765, GrantSource.PURCHASE)
    s = open_session().sign_in(owner)
    page = s.go("/billing/")
    expect(page.get_by_test_id("header-balance")).to_contain_text("8,765 credits")
    page.set_viewport_size({"width": 1280, "height": 800})
    lines = page.evaluate(_HEADER_LINES)
    assert max(lines["tops"]) - min(lines["tops"]) <= 8, str(lines)
    assert lines["nav"] < 1.5 * lines["link"], str(lines)
    assert lines["right"] < 1.5 * lines["link"] + 16, str(lines)
