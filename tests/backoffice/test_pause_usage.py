"""Pausing an organization's usage: its usage events and holds are refused with
402 usage_paused (the API's envelope) until staff resume it."""

from decimal import Decimal

import pytest

from orgs import services as orgs_services
from orgs.models import AuditEvent
from tests.billing.helpers import C
from usage import services as usage_services
from usage.models import GrantSource, UsageEvent

pytestmark = pytest.mark.django_db

EVENT = {"idempotency_key": "run-1:llm", "meter": "ai.output_tokens", "model": "gpt-5-mini", "quantity": 1000}


@pytest.fixture
def funded(org):
    usage_services.credits_grant(org=org, amount_micros=100 * C, source=GrantSource.PURCHASE)
    return org


def test_finance_pauses_and_every_usage_call_is_refused_with_usage_paused(finance_client, funded, api):
    response = finance_client.post(f"/admin/backoffice/customers/{funded.pk}/pause/", {"pause-reason": "Fraud check"})
    assert response.status_code == 302

    single = api.post("/api/v1/usage/events", EVENT, format="json")
    batch = api.post("/api/v1/usage/events/batch", {"events": [EVENT]}, format="json")
    hold = api.post("/api/v1/holds", {"credits": "5", "idempotency_key": "h1"}, format="json")

    for refused in (single, batch, hold):
        assert refused.status_code == 402, refused.content
        error = refused.json()["error"]
        assert error["code"] == "usage_paused" and "paused by Tollgate staff" in error["message"]
        assert "Fraud check" not in refused.content.decode()  # the staff reason is internal
    assert not UsageEvent.objects.exists()
    audit = AuditEvent.objects.get(org=funded, action="org.usage_paused")
    assert audit.data == {"reason": "Fraud check"} and audit.actor_label


def test_resuming_lets_usage_in_again(finance, funded, api):
    orgs_services.org_usage_pause(org=funded, reason="Fraud check", staff_user=finance)
    orgs_services.org_usage_resume(org=funded, reason="Cleared", staff_user=finance)

    response = api.post("/api/v1/usage/events", EVENT, format="json")

    assert response.status_code == 201, response.content
    assert AuditEvent.objects.filter(org=funded, action="org.usage_resumed", data__reason="Cleared").exists()


def test_a_hold_opened_before_the_pause_can_still_be_released(finance, funded):
    hold = usage_services.hold_create(org=funded, amount_micros=5 * C)
    orgs_services.org_usage_pause(org=funded, reason="Fraud check", staff_user=finance)
    funded.refresh_from_db()

    released = usage_services.hold_release(org=funded, hold_id=hold.pk)

    assert released.status == "released"


def test_the_service_refuses_usage_of_a_paused_org_whatever_the_caller(finance, funded):
    from usage.errors import OrgUsagePaused
    from usage.services import UsageInput

    orgs_services.org_usage_pause(org=funded, reason="Fraud check", staff_user=finance)
    funded.refresh_from_db()

    with pytest.raises(OrgUsagePaused):
        usage_services.usage_record(org=funded, event=UsageInput(meter="ai.output_tokens", quantity=Decimal(10),
                                                                  model="gpt-5-mini", idempotency_key="k"))


def test_pausing_twice_writes_one_audit_row(finance, funded):
    orgs_services.org_usage_pause(org=funded, reason="One", staff_user=finance)
    orgs_services.org_usage_pause(org=funded, reason="Two", staff_user=finance)

    assert AuditEvent.objects.filter(org=funded, action="org.usage_paused").count() == 1


def test_the_page_says_the_org_is_paused_and_offers_resume(finance_client, finance, funded):
    orgs_services.org_usage_pause(org=funded, reason="Fraud check", staff_user=finance)

    page = finance_client.get(f"/admin/backoffice/customers/{funded.pk}/").content.decode()

    assert 'id="usage-paused"' in page and "Fraud check" in page and 'id="action-resume"' in page
    assert 'id="action-pause"' not in page
