"""A member opens a workflow run's receipt from Usage, reads it and downloads its CSV."""

import csv
import io
from datetime import timedelta
from decimal import Decimal

import pytest
from playwright.sync_api import expect

from tests.factories import api_key_for
from usage import services
from usage.models import GrantSource
from usage.services import UsageInput

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_member_opens_a_runs_receipt_from_usage_and_downloads_its_csv(open_session, org, owner, member):
    services.credits_grant(org=org, amount_micros=500_000_000, source=GrantSource.PURCHASE)
    run = "run-2026-11-21/draft-and-post"
    hold = services.hold_create(org=org, amount_micros=20_000_000, idempotency_key="h", workflow_run_id=run)
    services.hold_capture_events(org=org, hold_id=hold.pk, events=[
        UsageInput("llm-1", "ai.input_tokens", Decimal(48_200), model="gpt-5-mini", member=member, workflow_run_id=run),
        UsageInput("llm-2", "ai.output_tokens", Decimal(12_400), model="gpt-5-mini", member=member, workflow_run_id=run),
    ])
    services.usage_record(org=org, event=UsageInput("post", "action.medium", Decimal(1), member=owner, workflow_run_id=run))
    services.usage_record(org=org, event=UsageInput("render", "compute.seconds", Decimal("38.5"), workflow_run_id=run))
    services.usage_record(org=org, event=UsageInput("other", "action.small", Decimal(1), workflow_run_id="run-other"))

    s = open_session().sign_in(member)
    page = s.go("/billing/usage/")
    page.get_by_test_id("workflow-runs").get_by_role("link", name=run).click()
    expect(page.get_by_role("heading", name="Receipt of a workflow run")).to_be_visible()
    expect(page.get_by_test_id("receipt-run-id")).to_have_text(run)
    lines = page.get_by_test_id("receipt-lines")
    expect(lines.locator("tbody tr")).to_have_count(4)
    expect(lines).to_contain_text("12,400 AI output tokens")
    expect(lines).to_contain_text(member.email)
    expect(page.get_by_test_id("receipt-holds")).to_contain_text("Captured")
    total = page.get_by_test_id("receipt-total").inner_text()
    s.snap("run-receipt")

    with page.expect_download() as download_info:
        page.get_by_test_id("receipt-csv").click()
    download = download_info.value
    body = io.StringIO(open(download.path(), encoding="utf-8").read())
    header, *rows = list(csv.reader(body))
    assert header[:3] == ["occurred_at", "event_id", "meter"]
    assert [r[13] for r in rows] == ["llm-1", "llm-2", "post", "render"]
    # The page's total is the CSV's lines added up, exactly.
    assert sum(Decimal(r[7]) for r in rows) == Decimal(total.split()[0].replace(",", ""))


def test_a_runs_receipt_shows_its_child_hold_and_the_token_a_tool_spent_with(open_session, org, owner, member):
    services.credits_grant(org=org, amount_micros=500_000_000, source=GrantSource.PURCHASE)
    key, _secret = api_key_for(org, name="agent")
    run = "run-2026-11-21/research"
    parent = services.hold_create(org=org, amount_micros=40_000_000, idempotency_key="p", workflow_run_id=run,
                                  member=member, expires_in=timedelta(hours=1), actor=key)
    services.usage_record(org=org, actor=key, event=UsageInput(
        "plan", "ai.output_tokens", Decimal(8_000), model="gpt-5-mini", workflow_run_id=run, hold_id=parent.pk))
    child = services.hold_create(org=org, amount_micros=12_000_000, idempotency_key="c", parent_hold_id=parent.pk,
                                 expires_in=timedelta(hours=1), actor=key)
    token, _raw = services.spending_token_create(org=org, hold_id=child.pk, ceiling_micros=10_000_000,
                                                 name="web-search", actor=key)
    for n in range(2):
        services.usage_record(org=org, actor=key, token=token, event=UsageInput(
            f"search-{n}", "action.small", Decimal(1), workflow_run_id=run, hold_id=child.pk))
    services.hold_capture(org=org, hold_id=child.pk, amount_micros=3_000_000, actor=key)
    services.hold_capture(org=org, hold_id=parent.pk, amount_micros=9_000_000, actor=key)

    s = open_session().sign_in(owner)
    page = s.go(f"/billing/usage/runs/{run}/")
    expect(page.get_by_test_id("receipt-total")).to_have_text("9 credits")  # 2.4 + 2 of events, 4.6 beyond
    expect(page.get_by_test_id("receipt-unitemised")).to_contain_text("4.6 credits")
    holds = page.get_by_test_id("receipt-holds")
    expect(holds.locator("tbody tr")).to_have_count(2)
    expect(page.get_by_test_id(f"receipt-hold-{child.pk}")).to_contain_text(f"of #{parent.pk}")
    tokens = page.get_by_test_id("receipt-tokens")
    expect(tokens).to_contain_text(token.prefix)
    expect(tokens).to_contain_text("web-search")
    expect(page.get_by_test_id("receipt-lines")).to_contain_text(token.prefix)
    s.snap("run-receipt-holds-and-tokens")
