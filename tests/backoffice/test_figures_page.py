"""The figures page and the front page's panel: staff only, in the admin's frame."""

from __future__ import annotations

from datetime import datetime, timedelta
from datetime import timezone as dt_timezone

import pytest
import time_machine
from django.utils import timezone

from billing import services as billing_services
from billing.models import PlanPrice, ReconciliationRun, RunStatus
from tests.factories import OrganizationFactory, UserFactory

pytestmark = pytest.mark.usefixtures("catalog")
NOW = datetime(2026, 11, 20, 12, tzinfo=dt_timezone.utc)
URL = "/admin/backoffice/figures/"


@pytest.fixture
def customer(db):
    org = OrganizationFactory()
    with time_machine.travel(NOW - timedelta(days=2), tick=False):
        billing_services.plan_simulate_subscribe(
            org=org, plan_price=PlanPrice.objects.get(plan__code="pro", interval="year"))
    return org


def test_it_sends_people_who_are_not_staff_to_the_admin_login(client, db):
    assert client.get(URL).status_code == 302
    client.force_login(UserFactory())
    response = client.get(URL)
    assert response.status_code == 302 and response["Location"].startswith("/admin/login/")


def test_it_shows_staff_the_figures_inside_the_admin(admin_client, customer):
    with time_machine.travel(NOW, tick=False):
        response = admin_client.get(URL)
    html = response.content.decode()
    assert response.status_code == 200
    assert "Business figures, November 2026" in html and "$82.50" in html
    assert 'id="site-name"' in html  # the admin's frame
    assert "vendor/chartjs/chart.umd.min.js" in html and "cdn" not in html.lower()


def test_it_shows_a_past_month_and_answers_400_to_a_bad_one(admin_client, customer):
    with time_machine.travel(NOW, tick=False):
        october = admin_client.get(URL, {"month": "2026-10"})
        bad = admin_client.get(URL, {"month": "soon"})
    assert october.status_code == 200 and "Business figures, October 2026" in october.content.decode()
    assert bad.status_code == 400 and "month must be YYYY-MM" in bad.content.decode()


def test_the_admin_front_page_has_the_figures_panel(admin_client, customer):
    with time_machine.travel(NOW, tick=False):
        html = admin_client.get("/admin/").content.decode()
    assert 'data-testid="figures-panel"' in html and "$82.50" in html and URL in html


def test_health_shows_the_last_reconciliation_with_stripe(admin_client, customer):
    with time_machine.travel(NOW, tick=False):
        assert "never run" in admin_client.get(URL).content.decode()
        with time_machine.travel(NOW - timedelta(hours=3), tick=False):
            ReconciliationRun.objects.create(status=RunStatus.DRIFT, finished_at=timezone.now(), findings_count=2)
        html = admin_client.get(URL).content.decode()
    assert "3\xa0hours ago: 2 drifts" in html
