"""Feature access by plan, as people meet it: the Plans page says what each
feature unlocks and what each plan caps; an invitation or a key the plan does
not allow is refused with a link to the plan that does."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from accounts.models import OrgAPIKey
from orgs.models import Invitation
from tests.factories import MembershipFactory, UserFactory, api_key_for

pytestmark = pytest.mark.browser


def test_the_plans_page_says_what_each_feature_unlocks(open_session, org, owner):
    s = open_session().sign_in(owner)
    page = s.go("/billing/plans/")

    pro = page.get_by_test_id("plan-pro")
    expect(pro.get_by_test_id("feature-media_generation")).to_contain_text("Image, speech and video generation")
    expect(pro.get_by_test_id("feature-media_generation")).to_contain_text(
        "Record usage on the image, text-to-speech and video meters.")
    expect(pro).to_contain_text("Up to 25 members")
    expect(page.get_by_test_id("plan-free")).to_contain_text("Up to 2 API keys")
    expect(page.get_by_test_id("plan-max")).to_contain_text("Unlimited members")
    expect(page.get_by_test_id("plan-free").get_by_test_id("feature-media_generation")).to_have_count(0)
    s.snap("plans-features")


def test_an_invitation_past_the_plans_member_cap_links_to_the_plan_that_allows_it(open_session, org, owner):
    for email in ("ada@acme.test", "grace@acme.test"):  # with the owner: Free's three members
        MembershipFactory(org=org, user=UserFactory(email=email))
    s = open_session().sign_in(owner)
    page = s.go("/billing/members/")

    page.get_by_label("E-mail").fill("fourth@acme.test")
    page.get_by_role("button", name="Send invitation").click()

    expect(page.get_by_role("alert")).to_contain_text("Free allows 3 members per organization, and this one has 3.")
    link = page.get_by_role("link", name="See Starter on the Plans page")
    expect(link).to_be_visible()
    s.snap("members-plan-limit")
    assert not Invitation.objects.filter(email="fourth@acme.test").exists()

    link.click()
    page.wait_for_url("**/billing/plans/#plan-starter")
    expect(page.get_by_test_id("plan-starter")).to_contain_text("Up to 5 members")


def test_a_key_past_the_plans_key_cap_links_to_the_plan_that_allows_it(open_session, org, owner):
    for name in ("runner", "scheduler"):
        api_key_for(org, name=name)
    s = open_session().sign_in(owner)
    page = s.go("/billing/api-keys/")

    page.get_by_label("Name").fill("third")
    page.get_by_role("button", name="Create key").click()

    expect(page.get_by_role("alert")).to_contain_text("Free allows 2 API keys per organization")
    expect(page.get_by_role("link", name="See Starter on the Plans page")).to_have_attribute(
        "href", "/billing/plans/#plan-starter")
    s.snap("api-keys-plan-limit")
    assert OrgAPIKey.objects.filter(org=org).count() == 2
