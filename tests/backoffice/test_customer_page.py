"""One page per customer: every block shows the seeded organization's rows,
money in credits and dollars (never micros)."""

import re

import pytest

from billing.models import BillingState

pytestmark = pytest.mark.django_db

BLOCKS = ["credits", "actions", "members", "plan", "grants", "ledger", "holds", "purchases", "invoices", "refunds",
          "disputes", "auto-topup", "notifications", "stripe-events", "audit"]


@pytest.fixture
def page(customer, support_client) -> str:
    response = support_client.get(f"/admin/backoffice/customers/{customer['org'].pk}/")
    assert response.status_code == 200
    return response.content.decode()


def block(page: str, name: str) -> str:
    match = re.search(rf'<(section|table) id="{name}".*?</\1>', page, re.S)
    assert match, f"no block {name}"
    return match.group(0)


def test_each_block_is_on_the_page(page):
    for name in BLOCKS:
        assert block(page, name)


def test_it_shows_members_with_their_roles(page):
    members = block(page, "members")
    assert "owner@acme.test" in members and "Owner" in members and "member@acme.test" in members


def test_it_shows_the_plan_its_status_and_its_history(page, customer):
    plan = block(page, "plan")
    state = BillingState.objects.get(org=customer["org"])
    assert "starter" in plan and "Active" in plan and state.subscription_id in plan
    assert "billing.plan_changed" in plan or "billing.trial_started" in plan


def test_it_shows_the_figures_in_credits_and_money(page, customer):
    from usage.models import CreditAccount

    account = CreditAccount.objects.get(org=customer["org"])
    credits = block(page, "credits")
    assert "Held" in credits and "7 credits" in credits and "$0.07" in credits
    assert str(account.balance_micros) not in page  # never micros


def test_it_shows_grants_ledger_holds_and_a_link_to_the_whole_ledger(page, customer):
    from usage.models import CreditAccount

    account = CreditAccount.objects.get(org=customer["org"])
    assert "Purchase" in block(page, "grants")
    assert "Refund of" in block(page, "ledger")
    assert f"/admin/usage/ledgerentry/?account__id__exact={account.pk}" in page
    assert "run-42" in block(page, "holds")


def test_it_shows_purchases_invoices_refunds_and_disputes(page, customer):
    assert customer["purchases"][0].payment_intent_id in block(page, "purchases")
    assert customer["invoice"]["number"] in block(page, "invoices")
    refunds = block(page, "refunds")
    assert "$2.50" in refunds
    assert "needs_response" in block(page, "disputes")


def test_it_shows_auto_top_up_notifications_stripe_events_and_the_audit_trail(page, customer):
    assert "card_declined" in block(page, "auto-topup")
    assert "Your card was declined" in block(page, "notifications")
    events = block(page, "stripe-events")
    assert "invoice.paid" in events and "charge.refunded" in events
    audit = block(page, "audit")
    assert "billing.pack_purchased" in audit or "credits.granted" in audit
    assert f"/admin/orgs/auditevent/?org__id__exact={customer['org'].pk}" in page


def test_the_whole_ledger_and_audit_links_open(page, customer, support_client):
    for url in re.findall(r'href="(/admin/(?:usage/ledgerentry|orgs/auditevent)/\?[^"]+)"', page):
        assert support_client.get(url.replace("&amp;", "&")).status_code == 200, url


def test_another_org_is_a_404(support_client, db):
    assert support_client.get("/admin/backoffice/customers/999999/").status_code == 404


def test_the_page_costs_the_same_queries_however_long_the_history(customer, support_client):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from tests.billing.helpers import C
    from usage import services as usage_services
    from usage.models import GrantSource

    org = customer["org"]
    url = f"/admin/backoffice/customers/{org.pk}/"

    def queries() -> int:
        with CaptureQueriesContext(connection) as ctx:
            assert support_client.get(url).status_code == 200
        return len(ctx.captured_queries)

    before = queries()
    for n in range(30):
        usage_services.credits_grant(org=org, amount_micros=C, source=GrantSource.PROMO, reason=f"n{n}")
        usage_services.hold_create(org=org, amount_micros=C // 10)
    assert queries() == before
