"""The reconciliation page under /admin/backoffice/reconciliation/ and its panel
on the admin's front page: staff see runs and drift with links to both sides
and may start a run; nobody else gets in."""

from datetime import timedelta

import pytest
from django.db.models import F

from billing import services
from billing.models import DriftKind, ReconciliationFinding, ReconciliationRun, RunStatus
from tests.factories import UserFactory
from usage import services as usage_services
from usage.models import CreditAccount, GrantSource

pytestmark = pytest.mark.django_db

URL = "/admin/backoffice/reconciliation/"


@pytest.fixture
def staff_client(client):
    client.force_login(UserFactory(email="finance@tollgate.test", is_staff=True, is_superuser=True))
    return client


@pytest.fixture
def drifted(org):
    """A run that found the organization's cached balance one micro-credit off the ledger."""
    usage_services.credits_grant(org=org, amount_micros=10_000_000, source=GrantSource.PROMO, idempotency_key="promo")
    CreditAccount.objects.filter(org=org).update(balance_micros=F("balance_micros") + 1)
    return services.stripe_reconcile(trigger="beat", settle=timedelta(0), notify=False)


def test_it_lists_the_last_runs_drift_with_links_to_both_sides(staff_client, drifted, org):
    ReconciliationFinding.objects.create(
        run=drifted, kind=DriftKind.PAID_WITHOUT_GRANT, org=org, message="Checkout session paid but nothing granted.",
        stripe_id="cs_test_1", stripe_model="session", stripe_pk=7, local_model="billing.checkoutstart", local_pk=3,
    )

    page = staff_client.get(URL)

    html = page.content.decode()
    assert page.status_code == 200
    assert "Reconciliation with Stripe" in html and "Cached balance differs from the ledger" in html
    account = CreditAccount.objects.get(org=org)
    assert f'href="/admin/usage/creditaccount/{account.pk}/change/"' in html
    assert 'href="/admin/djstripe/session/7/change/">cs_test_1</a>' in html
    assert 'href="/admin/billing/checkoutstart/3/change/"' in html
    assert "Acme" in html and 'id="site-name"' in html  # in the admin's frame


def test_it_shows_an_older_run_when_asked(staff_client, drifted, org):
    clean = ReconciliationRun.objects.create(trigger="command", status=RunStatus.CLEAN, finished_at=drifted.started_at)

    page = staff_client.get(f"{URL}?run={clean.pk}")

    assert page.status_code == 200
    assert "No drift" in page.content.decode() and "Cached balance differs" not in page.content.decode()


@pytest.mark.parametrize("run", ["999999", "abc"])
def test_an_unknown_run_is_not_found(staff_client, run):
    assert staff_client.get(f"{URL}?run={run}").status_code == 404


def test_staff_can_run_it_now(staff_client, org):
    response = staff_client.post(URL)

    assert response.status_code == 302 and response["Location"] == URL
    run = ReconciliationRun.objects.get()  # the task ran eagerly here; a worker runs it in production
    assert run.trigger == "staff:finance@tollgate.test" and run.status == RunStatus.CLEAN


def test_people_who_are_not_staff_are_sent_to_the_admin_login(client, owner, drifted):
    for who in (None, owner):
        if who:
            client.force_login(who)
        for response in (client.get(URL), client.post(URL)):
            assert response.status_code == 302 and response["Location"].startswith("/admin/login/")
    assert ReconciliationRun.objects.count() == 1


def test_the_front_page_panel_shows_the_last_runs_result(staff_client, drifted):
    html = staff_client.get("/admin/").content.decode()

    assert 'id="reconciliation-panel"' in html
    count = drifted.findings_count  # the balance, and the debt computed from it
    assert count >= 1
    assert f"{count} drift" in html and f"Cached balance differs from the ledger: {count}" in html
    assert f"{URL}?run={drifted.pk}#run" in html


def test_the_front_page_panel_says_when_nothing_ran_or_all_agreed(staff_client):
    assert "No reconciliation has run yet" in staff_client.get("/admin/").content.decode()

    services.stripe_reconcile(trigger="beat", notify=False)

    assert "No drift in the last run" in staff_client.get("/admin/").content.decode()
