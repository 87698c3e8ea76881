"""First-hour stumbles on the pages, in a real browser: a top-up error seen on
a phone, the card auto top-up charges, a new API key ready to copy and try,
and the members page for the last owner and the invite form."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from billing import services
from orgs.models import Role
from tests.billing import stripe_builders as b
from tests.billing.helpers import customer_id
from tests.browser.conftest import PHONE

pytestmark = pytest.mark.browser


@pytest.fixture
def simulated(settings):
    settings.BILLING_SIMULATED_PAYMENTS = True


def test_a_top_up_error_on_a_phone_is_summarised_at_the_top_and_focused(simulated, open_session, org, owner):
    services.billing_state_for(org)
    s = open_session().sign_in(owner)
    page = s.go("/billing/top-up/")
    page.set_viewport_size(PHONE)
    page.get_by_label("Credits").fill("20")
    page.get_by_role("button", name="Continue to payment (simulated)").click()
    page.wait_for_load_state()

    summary = page.get_by_test_id("error-summary")
    expect(summary).to_be_focused()
    expect(summary).to_contain_text("Buy between 500 and 100,000 credits at a time.")
    box = summary.bounding_box()
    assert box is not None and 0 <= box["y"] and box["y"] + box["height"] <= PHONE["height"], box
    # Its link takes you to the field.
    summary.get_by_role("link").click()
    expect(page.get_by_label("Credits")).to_be_focused()
    s.snap("top-up-error-summary")


def test_auto_top_up_shows_the_saved_card(webhooks, open_session, org, owner):
    customer = customer_id(org)
    method = b.payment_method(customer=customer)
    method["card"].update(brand="mastercard", display_brand="mastercard", last4="4444")
    webhooks.send("payment_method.attached", method)
    s = open_session().sign_in(owner)
    page = s.go("/billing/settings/auto-top-up/")
    expect(page.get_by_test_id("saved-card")).to_contain_text("Mastercard ending in 4444")
    expect(page.get_by_role("button", name="Change card")).to_be_visible()
    s.snap("auto-top-up-saved-card")


def test_a_new_api_key_has_a_copy_button_and_an_example_request(open_session, live_server, org, owner):
    s = open_session().sign_in(owner)
    page = s.go("/billing/api-keys/")
    page.get_by_label("Name").fill("workflow-runner")
    page.get_by_role("button", name="Create key").click()
    secret = page.get_by_test_id("new-key").inner_text()
    assert re.fullmatch(r"\S{20,}", secret), secret

    expect(page.get_by_role("button", name="Copy the key")).to_be_visible()
    expect(page.get_by_role("button", name="Copy the example")).to_be_visible()
    example = page.get_by_test_id("key-example").inner_text()
    assert example == (f"curl {live_server.url}/api/v1/balance \\\n"
                       f"  -H \"Authorization: Bearer {secret}\"")
    s.snap("api-key-new")


def test_the_last_owner_is_not_offered_leave_and_the_invite_form_explains_roles(open_session, org, owner, member):
    s = open_session().sign_in(owner)
    page = s.go("/billing/members/")
    expect(page.get_by_role("button", name="Leave")).to_have_count(0)
    expect(page.get_by_test_id("sole-owner")).to_be_visible()
    for role in Role:
        expect(page.get_by_role("radio", name=role.label, exact=True)).to_be_visible()
    expect(page.get_by_role("radio", name="Billing", exact=True)).to_have_accessible_description(
        re.compile("Buys credits"))
    s.snap("members-roles")
