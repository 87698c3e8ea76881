"""The API keys page when the runaway breaker paused a key: the banner names it and
why, Resume lets its usage in again, and the pause-on-runaway switch."""

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from accounts.models import OrgAPIKey
from orgs.models import Organization
from tests.factories import api_key_for
from usage.models import RunawayOccurrence

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

REASON = "It spent 612.5 credits in an hour, over 10 times its usual 4.2 credits an hour."


def test_the_banner_names_the_paused_key_and_resume_lets_it_in_again(open_session, org, owner):
    key, _ = api_key_for(org, name="nightly-agent")
    now = timezone.now()
    OrgAPIKey.objects.filter(pk=key.pk).update(paused_at=now, paused_reason=REASON)
    RunawayOccurrence.objects.create(
        org=org, api_key_prefix=key.prefix, hour=now.replace(minute=0, second=0, microsecond=0),
        window_start=now, window_end=now, spend_micros=612_500_000, baseline_micros=4_200_000, baseline_hours=168,
        multiple=10, paused=True, created_at=now,
    )
    s = open_session().sign_in(owner)
    page = s.go("/billing/api-keys/")
    banner = page.get_by_test_id("paused-key")
    expect(banner).to_contain_text(f"“nightly-agent” ({key.prefix}…) is paused")
    expect(banner).to_contain_text(REASON)
    s.snap("api-keys-paused")
    banner.get_by_role("button", name="Resume key nightly-agent").click()
    expect(page.get_by_text("is resumed: its usage is accepted again")).to_be_visible()
    expect(page.get_by_test_id("paused-key")).to_have_count(0)
    assert OrgAPIKey.objects.get(pk=key.pk).paused_at is None
    page.get_by_role("button", name="Turn on pause on runaway").click()
    expect(page.get_by_test_id("pause-on-runaway")).to_contain_text("Pause on runaway is on")
    assert Organization.objects.get(pk=org.pk).pause_on_runaway
