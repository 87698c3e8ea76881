"""A new user's first hour in a real browser: registering a provider key by
pasting it, a new team organization with its Free allowance and no alarm, and
the first screen after accepting an invitation."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from usage.models import ProviderKey

pytestmark = pytest.mark.browser

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
