"""The reconciliation page in the admin's frame: staff run it, see each drift
with links to both sides, and the admin's front page shows the last result."""

import pytest
from django.db.models import F
from playwright.sync_api import expect

from billing.models import ReconciliationRun
from tests.factories import UserFactory
from usage import services as usage_services
from usage.models import CreditAccount, GrantSource

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_staff_run_it_now_and_follow_a_drift_to_the_account(open_session, org):
    usage_services.credits_grant(org=org, amount_micros=10_000_000, source=GrantSource.PROMO, idempotency_key="promo")
    CreditAccount.objects.filter(org=org).update(balance_micros=F("balance_micros") + 1)
    staff = UserFactory(email="finance@tollgate.test", is_staff=True, is_superuser=True)
    s = open_session().sign_in(staff)

    page = s.go("/admin/backoffice/reconciliation/")
    expect(page.get_by_text("No reconciliation has run yet.")).to_be_visible()
    page.get_by_role("button", name="Run now").click()  # a worker runs it; here Celery runs it at once

    expect(page.get_by_text("Reconciliation started.")).to_be_visible()
    page.reload()
    expect(page.locator("#findings")).to_contain_text("Cached balance differs from the ledger")
    run = ReconciliationRun.objects.get()
    assert run.trigger == "staff:finance@tollgate.test" and run.findings_count >= 1
    s.snap("backoffice-reconciliation")

    page.locator("#findings a", has_text="usage.creditaccount").first.click()
    expect(page).to_have_url(f"{s.base_url}/admin/usage/creditaccount/{CreditAccount.objects.get(org=org).pk}/change/")

    home = s.go("/admin/")
    expect(home.locator("#reconciliation-panel")).to_contain_text(f"{run.findings_count} drifts")
    s.snap("backoffice-home-reconciliation-panel")
