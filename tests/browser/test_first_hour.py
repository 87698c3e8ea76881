"""A new user's first hour in a real browser: registering a provider key by
pasting it, a new team organization with its Free allowance and no alarm, and
the first screen after accepting an invitation."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from billing import services
from orgs import services as org_services
from tests.factories import UserFactory
from usage.models import ProviderKey

pytestmark = pytest.mark.browser

def header_amount(page) -> str:
    return page.get_by_test_id("header-balance").locator(".balance-amount").inner_text()


WHOLE_KEY = "sk-proj-T0llgateSecretPart1234567890abcdefZq7w"


def test_pasting_a_whole_provider_key_keeps_only_its_last_four(open_session, org, owner):
    s = open_session().sign_in(owner)
    page = s.go("/billing/settings/provider-keys/")
    page.get_by_label("Provider", exact=True).select_option("openai")
    page.get_by_label("Label").fill("Production agents")
    field = page.get_by_label("Last four characters")
    field.focus()
    page.keyboard.insert_text(WHOLE_KEY)  # what a paste does
    page.get_by_role("button", name="Register key").click()

    expect(page.get_by_text("Registered “Production agents” (…Zq7w).")).to_be_visible()
    expect(page.get_by_test_id("provider-keys")).to_contain_text("…Zq7w")
    assert list(ProviderKey.objects.filter(org=org).values_list("last_four", flat=True)) == ["Zq7w"]
    s.snap("provider-key-pasted")


def test_a_new_team_org_shows_its_free_credits_and_no_alarm(open_session, owner, mailoutbox):
    s = open_session().sign_in(owner)
    page = s.go("/billing/orgs/new/")
    page.get_by_label("Name").fill("Rocket Team")
    page.get_by_role("button", name=re.compile("Create")).click()
    page.wait_for_url(re.compile(r"/billing/members/$"))

    page = s.go("/billing/")
    assert header_amount(page) == "50 credits"
    expect(page.get_by_text("No allowance this period")).to_have_count(0)
    s.snap("new-team-org")
    services.alerts_sweep()
    assert [m.subject for m in mailoutbox] == []


def test_an_invitee_lands_on_a_welcome(open_session, org, owner):
    owner.full_name = "Olivia Owner"
    owner.save()
    _inv, token = org_services.invitation_create(org=org, actor=owner, email="bob@person.test", role="member")
    bob = UserFactory(email="bob@person.test")
    s = open_session().sign_in(bob)
    page = s.go(f"/billing/invitations/{token}/")
    page.get_by_role("button", name="Accept invitation").click()

    page.wait_for_url(re.compile(r"/billing/orgs/acme/welcome/$"))
    expect(page.get_by_role("heading", name="Welcome to Acme")).to_be_visible()
    expect(page.get_by_test_id("welcome")).to_contain_text("Olivia Owner invited you as member")
    expect(page.get_by_test_id("welcome-next")).to_contain_text("see your usage")
    s.snap("invitation-welcome")
