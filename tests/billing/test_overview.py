from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from orgs.models import Role
from tests.billing.helpers import C, grant, spend
from tests.factories import MembershipFactory
from usage import services
from usage.models import GrantSource

pytestmark = pytest.mark.django_db

URL = reverse("billing:overview")


def page(client, user):
    client.force_login(user)
    response = client.get(URL)
    assert response.status_code == 200
    return response.content.decode()


def test_it_needs_a_sign_in(client):
    response = client.get(URL)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("accounts:login"))


def test_an_empty_balance_says_so_and_offers_a_top_up_to_billing_roles(client, org, owner):
    content = page(client, owner)
    assert "Your balance is empty. Top up to continue." in content
    assert 'href="/billing/top-up/"' in content


@pytest.mark.parametrize("role", [Role.ADMIN, Role.BILLING])
def test_every_billing_role_sees_buy_and_send_buttons(client, org, role):
    user = MembershipFactory(org=org, role=role).user
    content = page(client, user)
    assert 'data-testid="top-up"' in content
    assert 'data-testid="send-button"' in content


def test_a_member_sees_the_balance_but_no_buy_or_send_buttons(client, org, owner, member):
    grant(org, 5)
    content = page(client, member)
    main = content.split('id="main"')[1]
    assert "Your balance is running low." in main
    assert "Ask an owner, admin or billing manager to top up." in main
    assert "/billing/top-up/" not in main
    assert 'data-testid="send-button"' not in main


def test_a_member_with_an_empty_balance_is_told_whom_to_ask(client, org, owner, member):
    content = page(client, member)
    assert "Your balance is empty. Top up to continue." in content
    assert "Ask an owner, admin or billing manager of Acme to top up." in content


def test_it_shows_available_held_money_and_status(client, org, owner):
    grant(org, 1500)
    services.hold_create(org=org, amount_micros=300 * C)
    content = page(client, owner)
    assert 'data-testid="available"><span class="num">1,200</span>' in content
    assert "worth $12.00 at list price" in content
    assert 'data-testid="held">300<' in content
    assert "Your balance is" not in content  # neither empty nor low
    assert "badge-ok" in content


def test_a_balance_below_the_threshold_shows_the_low_banner(client, org, owner, settings):
    settings.LOW_BALANCE_CREDITS = "50"
    grant(org, 49.5)
    content = page(client, owner)
    assert "Your balance is running low." in content
    assert "49.5" in content


def test_it_estimates_how_many_actions_of_each_size_the_balance_buys(client, org, owner):
    grant(org, 1000)
    spend(org, 0.5, "u1")  # 999.5 left
    content = page(client, owner)
    assert 'data-testid="tier-small">≈ 999<' in content
    assert 'data-testid="tier-medium">≈ 399<' in content
    assert 'data-testid="tier-large">≈ 199<' in content
    assert 'data-testid="tier-xl">≈ 66<' in content


def test_it_lists_live_grants_with_their_expiry_and_hides_spent_ones(client, org, owner):
    soon = timezone.now() + timedelta(days=3)
    grant(org, 10, GrantSource.TRIAL, expires_at=soon)
    grant(org, 20, GrantSource.PURCHASE)
    grant(org, 5, GrantSource.PROMO, expires_at=soon)
    spend(org, 10, "burn-trial")  # the trial burns first (same expiry, lowest priority number)
    content = page(client, owner)
    grants = content.split('id="grants-title"')[1]
    assert "Promotion" in grants and "Purchase" in grants
    assert "Trial" not in grants
    assert "never" in grants
    assert soon.strftime("%b %-d, %Y") in grants


def test_debt_is_shown_when_usage_went_past_zero(client, org, owner):
    services.account_set_plan(org=org, plan_code="pro", overage_allowed=True)
    grant(org, 1)
    spend(org, 3, "over")
    content = page(client, owner)
    assert "Your balance is empty. Top up to continue." in content
    assert "a debt of <strong class=\"num\">2 credits</strong>" in content


def test_it_reads_a_bounded_number_of_rows_whatever_the_history(client, org, owner):
    grant(org, 100)
    for i in range(30):
        spend(org, 1, f"u{i}")
    client.force_login(owner)
    client.get(URL)
    with CaptureQueriesContext(connection) as queries:
        client.get(URL)
    assert not any("usage_ledgerentry" in q["sql"] for q in queries.captured_queries)
    assert len(queries) <= 13  # 12, and the bell's unread COUNT in the header
