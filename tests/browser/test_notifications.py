"""The bell in the header, the notifications page and the preferences page,
at desktop and phone width (snap checks sideways scrolling and axe)."""

from __future__ import annotations

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from inbox.models import InboxItem
from orgs.models import NotificationPreference
from orgs.notifications import notification_send

pytestmark = pytest.mark.browser

TRIAL = {"trial_ends_at": timezone.now(), "days_left": 1, "plan_name": "Starter", "link": "/billing/plans/"}


def tell(org, kind="trial_ending", context=TRIAL):
    # Outside a transaction: the seam's on-commit channels run at once.
    notification_send(kind, org=org, context=context)


def test_the_bell_counts_and_opening_an_item_goes_to_the_page_that_fixes_it(open_session, org, owner):
    tell(org)
    tell(org, "payment_failed", {"plan_name": "Pro", "grace_ends_at": timezone.now(), "link": "/billing/invoices/"})
    s = open_session().sign_in(owner)
    page = s.go("/billing/")
    bell = page.get_by_test_id("inbox-bell")
    expect(page.get_by_test_id("inbox-count")).to_have_text("2")
    expect(bell).to_have_attribute("aria-label", "Notifications, 2 unread")

    bell.click()
    expect(page.get_by_role("heading", name="Notifications", exact=True)).to_be_visible()
    expect(page.get_by_test_id("inbox-item")).to_have_count(2)
    s.snap("notifications")

    page.get_by_test_id("inbox-item").filter(has_text="Your trial ends tomorrow").get_by_role("button", name="Open").click()
    page.wait_for_url("**/billing/plans/")
    expect(page.get_by_test_id("inbox-count")).to_have_text("1")


def test_mark_one_and_mark_all_read(open_session, org, owner):
    for _ in range(3):
        tell(org)
    s = open_session().sign_in(owner)
    page = s.go("/notifications/")
    page.get_by_role("button", name="Mark read").first.click()
    expect(page.get_by_test_id("inbox-count")).to_have_text("2")
    page.get_by_test_id("read-all").click()
    expect(page.get_by_text("All notifications marked read.")).to_be_visible()
    expect(page.get_by_test_id("inbox-count")).to_have_count(0)
    assert not InboxItem.objects.filter(read_at__isnull=True).exists()


def test_an_empty_inbox_says_so(open_session, org, member):
    s = open_session().sign_in(member)
    page = s.go("/notifications/")
    expect(page.get_by_text("Nothing yet.")).to_be_visible()
    s.snap("notifications-empty")


def test_preferences_show_defaults_and_save_without_javascript(open_session, org, owner):
    s = open_session().sign_in(owner)
    page = s.go("/notifications/preferences/")
    expect(page.get_by_role("heading", name="Payments")).to_be_visible()
    box = page.get_by_test_id("pref-trial_ending:email")
    expect(box).to_be_checked()  # owners pay: on by default
    s.snap("notification-preferences")

    box.uncheck()
    page.get_by_role("button", name="Save preferences").click()
    expect(page.get_by_text("Your notification preferences are saved.")).to_be_visible()
    expect(page.get_by_test_id("pref-trial_ending:email")).not_to_be_checked()
    assert list(NotificationPreference.objects.values_list("kind", "channel", "enabled")) == [
        ("trial_ending", "email", False)
    ]


def test_preferences_save_with_javascript_off(browser, live_server, org, owner, open_session):
    s = open_session().sign_in(owner)
    context = browser.new_context(java_script_enabled=False, storage_state=s.context.storage_state())
    page = context.new_page()
    page.goto(f"{live_server.url}/notifications/preferences/")
    page.get_by_test_id("pref-payment_failed:in_app").uncheck()
    page.get_by_role("button", name="Save preferences").click()
    expect(page.get_by_test_id("pref-payment_failed:in_app")).not_to_be_checked()
    context.close()
