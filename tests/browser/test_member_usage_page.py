"""The "Who pays" settings page: an owner switches the organization to members
paying for their own usage, sees what members' personal balances paid, and a
member's 402 link opens their own personal organization's top-up page."""

from decimal import Decimal
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import expect

from orgs.models import MemberUsage, Organization
from tests.factories import MembershipFactory, OrganizationFactory, UserFactory
from usage import services
from usage.errors import InsufficientCredits
from usage.models import GrantSource
from usage.services import UsageInput

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_an_owner_lets_members_pay_and_sees_their_totals(open_session, org, owner, member):
    personal = OrganizationFactory(name="member@acme.test", slug="member-personal", is_personal=True)
    MembershipFactory(org=personal, user=member, role="owner")
    services.credits_grant(org=personal, amount_micros=10_000_000, source=GrantSource.PURCHASE)

    s = open_session().sign_in(owner)
    page = s.go("/billing/settings/who-pays/")
    expect(page.get_by_test_id("member-usage-mode")).to_contain_text("The organization pays")
    s.snap("settings-who-pays")
    page.get_by_label("Each member, from their personal balance").check()
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_text("Each member now pays for their own usage")).to_be_visible()
    expect(page.get_by_test_id("member-usage-mode")).to_contain_text("Each member pays for their own usage")
    org.refresh_from_db()
    assert org.member_usage == MemberUsage.PERSONAL

    services.usage_record(org=org, event=UsageInput("e1", "action.medium", Decimal(1), member=member))
    page = s.go("/billing/settings/who-pays/")
    expect(page.get_by_test_id("member-usage-totals")).to_contain_text("member@acme.test")
    expect(page.get_by_test_id("member-usage-totals")).to_contain_text("2.5")
    s.snap("settings-who-pays-personal")
    page = s.go("/billing/usage/")
    expect(page.get_by_test_id("usage-member-totals")).to_contain_text("member@acme.test")


def test_a_member_sees_the_setting_without_a_form_and_their_402_link_opens_their_own_top_up(
    open_session, org, owner, member,
):
    personal = OrganizationFactory(name="Member's own", slug="member-personal", is_personal=True)
    MembershipFactory(org=personal, user=member, role="owner")
    Organization.objects.filter(pk=org.pk).update(member_usage=MemberUsage.PERSONAL)
    org.refresh_from_db()
    s = open_session().sign_in(member)
    page = s.go("/billing/settings/who-pays/")
    expect(page.get_by_test_id("member-usage-mode")).to_contain_text("Each member pays")
    expect(page.get_by_test_id("member-usage-form")).to_have_count(0)
    expect(page.get_by_text("Only owners of Acme can change")).to_be_visible()

    with pytest.raises(InsufficientCredits) as raised:
        services.usage_record(org=org, event=UsageInput("e1", "action.xl", Decimal(1), member=member))
    link = urlsplit(raised.value.as_dict()["top_up_url"])
    page = s.go(f"{link.path}?{link.query}")
    expect(page.get_by_text("Add credits to Member's own.")).to_be_visible()
    expect(page.get_by_test_id("read-only")).to_have_count(0)  # they own it: they can buy
