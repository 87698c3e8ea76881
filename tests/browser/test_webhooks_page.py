"""Settings → Webhooks in a real browser: add an endpoint (secret shown once), the
delivery log with "send again", rotation; screenshotted at desktop and phone width
and checked with axe."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from outbound import services
from outbound.models import WebhookEndpoint
from tests.outbound.conftest import receiver  # noqa: F401 (fixture)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_an_owner_adds_an_endpoint_reads_the_log_and_sends_again(open_session, org, owner, receiver):  # noqa: F811
    s = open_session().sign_in(owner)
    page = s.go("/billing/settings/webhooks/")
    expect(page.get_by_text("No endpoints yet.")).to_be_visible()
    s.snap("settings-webhooks-empty")
    page.get_by_label("URL").fill(receiver.url)
    page.get_by_label("Description").fill("Resume paused workflows")
    page.get_by_role("button", name="Add endpoint").click()
    endpoint = WebhookEndpoint.objects.get()
    expect(page.get_by_test_id("new-secret")).to_have_text(endpoint.secret)
    expect(page.get_by_test_id("endpoints")).to_contain_text(receiver.url)
    s.snap("settings-webhooks-created")

    # An event on its way (eager Celery delivers after commit, as the embedded default does).
    services.event_send(org_id=org.pk, type="balance.low", data={"available": "42"}, key="browser")
    assert len(receiver.received) == 1
    page = s.go(f"/billing/settings/webhooks/{endpoint.pk}/")
    expect(page.get_by_test_id("deliveries")).to_contain_text("balance.low")
    expect(page.get_by_test_id("deliveries")).to_contain_text("HTTP 200")
    s.snap("settings-webhook-detail")
    page.get_by_role("button", name=re.compile(r"^Send evt_\w+ again$")).click()
    expect(page.get_by_text("is on its way again")).to_be_visible()
    assert len(receiver.received) == 2

    page.get_by_role("button", name="Rotate secret").click()
    endpoint.refresh_from_db()
    expect(page.get_by_test_id("new-secret")).to_have_text(endpoint.secret)
    s.snap("settings-webhook-rotated")
