"""The API keys page: a key created with a monthly limit and meters, its limit and
meters changed, its spend this month shown, and the refusals (a limit that is not
one, and a key at its limit)."""

from decimal import Decimal

import pytest
from playwright.sync_api import expect

from accounts.models import OrgAPIKey
from usage import services
from usage.errors import KeyLimitReached
from usage.models import GrantSource
from usage.services import UsageInput, rates

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

C = 1_000_000


@pytest.fixture
def rate_card(db):
    rates.clear_cache()
    rates.load_card_data(rates.read_data_file())
    yield
    rates.clear_cache()


def test_a_keys_limit_and_meters_are_set_changed_and_enforced(open_session, org, owner, rate_card):
    services.credits_grant(org=org, amount_micros=100 * C, source=GrantSource.PURCHASE)
    s = open_session().sign_in(owner)
    page = s.go("/billing/api-keys/")

    page.get_by_label("Name").fill("nightly-agent")
    page.get_by_label("Monthly limit (credits)").fill("10")
    page.get_by_label("Medium action (action.medium)").check()
    page.get_by_role("button", name="Create key").click()
    expect(page.get_by_test_id("new-key")).to_be_visible()
    key = OrgAPIKey.objects.get(org=org, name="nightly-agent")
    assert (key.monthly_limit_micros, key.meters) == (10 * C, ["action.medium"])
    expect(page.get_by_test_id(f"key-spend-{key.prefix}")).to_have_text("0 of 10")
    expect(page.get_by_test_id(f"key-meters-{key.prefix}")).to_contain_text("action.medium")

    # changed on the page: a limit that is not one is refused and nothing changes
    budget = page.get_by_test_id(f"key-budget-{key.prefix}")
    budget.locator("summary").click()
    budget.get_by_label("Monthly limit (credits)").fill("-5")
    budget.get_by_role("button", name="Save limit and meters of key nightly-agent").click()
    expect(page.get_by_text("A key's monthly limit must be zero or more credits.")).to_be_visible()
    assert OrgAPIKey.objects.get(pk=key.pk).monthly_limit_micros == 10 * C

    budget = page.get_by_test_id(f"key-budget-{key.prefix}")
    budget.locator("summary").click()
    budget.get_by_label("Monthly limit (credits)").fill("5")
    budget.get_by_label("Large action (action.large)").check()
    budget.get_by_role("button", name="Save limit and meters of key nightly-agent").click()
    expect(page.get_by_text("now has a monthly limit of 5 credits and may record action.large, action.medium")
           ).to_be_visible()
    key.refresh_from_db()
    assert (key.monthly_limit_micros, sorted(key.meters)) == (5 * C, ["action.large", "action.medium"])

    # the key spends its 5 credits; the next event is refused, and the page says so
    for name in ("a", "b"):
        services.usage_record(org=org, actor=key, event=UsageInput(
            idempotency_key=name, meter="action.medium", quantity=Decimal(1)))
    with pytest.raises(KeyLimitReached):
        services.usage_record(org=org, actor=key, event=UsageInput(
            idempotency_key="c", meter="action.medium", quantity=Decimal(1)))
    page = s.go("/billing/api-keys/")
    spend = page.get_by_test_id(f"key-spend-{key.prefix}")
    expect(spend).to_contain_text("5 of 5")
    expect(spend).to_contain_text("limit reached")
    s.snap("api-keys-budget")
