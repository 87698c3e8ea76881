"""The overview's plan, allowance and auto top-up blocks, and the checkout
return page that waits for the webhook."""

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from billing import services
from billing.models import BillingState
from tests.billing.helpers import C, grant, spend
from usage.models import GrantSource

pytestmark = pytest.mark.django_db


def overview(user) -> str:
    client = Client()
    client.force_login(user)
    return client.get("/billing/").content.decode()


def test_the_trial_shows_its_days_left_and_its_allowance_turning_amber_then_red(catalog, org, owner):
    services.trial_start(org=org)
    grant(org, 1000, GrantSource.PURCHASE)
    content = overview(owner)
    assert 'data-testid="trial-left"><strong>7 days</strong> left in your trial' in content
    assert 'data-testid="allowance-bar" data-level="ok"' in content and "0 <span" not in content

    spend(org, 200, "a")  # 80% of 250
    content = overview(owner)
    assert 'data-level="warn"' in content and 'aria-valuenow="80"' in content and "80% used: running low" in content
    spend(org, 38, "b")  # 95.2%
    assert 'data-level="bad"' in overview(owner)


def test_a_failed_payment_warns_with_the_date_of_the_downgrade(catalog, org, owner):
    services.billing_state_for(org)
    ends = timezone.now() + timedelta(days=5)
    BillingState.objects.filter(org=org).update(status="past_due", plan_code="pro", grace_ends_at=ends)

    content = overview(owner)

    assert 'data-testid="grace-warning"' in content
    assert f"Pro stays until" in content and ends.strftime("%B") in content and "moves to the Free plan" in content


def test_actions_are_priced_from_the_rate_card_for_the_orgs_plan(catalog, org, owner):
    from usage import services as usage_services
    from usage.services import rates

    services.billing_state_for(org)  # Free's 50 credits
    grant(org, 100)
    assert 'data-testid="tier-small">≈ 150<' in overview(owner)

    usage_services.rate_set(meter_code="action.small", credits_per_unit="0.5", plan_code="pro")
    rates.clear_cache()  # rate_set clears it after commit, which a test never reaches
    usage_services.account_set_plan(org=org, plan_code="pro", overage_allowed=True)
    content = overview(owner)
    assert 'data-testid="tier-small">≈ 300<' in content and 'data-testid="tier-xl">≈ 10<' in content


def test_auto_top_up_status_shows_on_the_overview(catalog, org, owner):
    services.auto_topup_configure(org=org, enabled=True, threshold_micros=100 * C, pack_code="pack_2000",
                                  monthly_cap_cents=5000)

    content = overview(owner)
    assert "buys 2,000 credits below 100" in content and "$0.00 of $50.00 this month" in content


def test_the_return_page_polls_until_the_webhook_lands_then_shows_the_balance(webhooks, fake_stripe, org, owner):
    from tests.billing.helpers import paid_session, start_pack_checkout

    client = Client()
    client.force_login(owner)
    start = start_pack_checkout(org, owner, "pack_2000")
    page = client.get(f"/billing/checkout/done/?session_id={start.session_id}").content.decode()
    assert 'data-state="pending"' in page and "checkout_status.js" in page
    assert f'data-poll="/billing/checkout/status/?session_id={start.session_id}"' in page

    status = client.get(f"/billing/checkout/status/?session_id={start.session_id}")
    assert status["Cache-Control"] == "no-store" and 'data-state="pending"' in status.content.decode()

    webhooks.send("checkout.session.completed", paid_session(fake_stripe, start))
    done = client.get(f"/billing/checkout/status/?session_id={start.session_id}").content.decode()
    assert 'data-state="complete"' in done and "<strong class=\"num\">2,000</strong> credits are in your balance" in done
    assert 'data-testid="credited-balance"' in done


def test_a_failed_bank_payment_says_so(webhooks, fake_stripe, org, owner):
    from tests.billing.helpers import paid_session, start_pack_checkout

    client = Client()
    client.force_login(owner)
    start = start_pack_checkout(org, owner, "pack_500")
    session = paid_session(fake_stripe, start, payment_status="unpaid")
    webhooks.send("checkout.session.completed", session)
    webhooks.send("checkout.session.async_payment_failed", session)

    done = client.get(f"/billing/checkout/status/?session_id={start.session_id}").content.decode()
    assert 'data-state="failed"' in done and "The payment failed" in done
