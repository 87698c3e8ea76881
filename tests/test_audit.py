import pytest
from django.db import DatabaseError, transaction

from billing_project.request_context import RequestContext, reset, set_current
from orgs.models import AuditEvent
from orgs.services import audit_record

pytestmark = pytest.mark.django_db


def test_an_audit_row_carries_who_and_from_where(org, owner):
    token = set_current(RequestContext(request_id="req-1", ip="203.0.113.9", source="web"))
    try:
        event = audit_record(org=org, action="test.thing", actor=owner, data={"n": 1})
    finally:
        reset(token)
    assert (event.actor_user, event.actor_label, event.request_id, event.ip, event.source) == (
        owner, "owner@acme.test", "req-1", "203.0.113.9", "web"
    )


def test_audit_rows_cannot_be_edited_or_deleted(org, owner):
    event = audit_record(org=org, action="test.thing", actor=owner)
    with pytest.raises(DatabaseError), transaction.atomic():
        AuditEvent.objects.filter(pk=event.pk).update(action="tampered")
    with pytest.raises(DatabaseError), transaction.atomic():
        AuditEvent.objects.filter(pk=event.pk).delete()
    assert AuditEvent.objects.get(pk=event.pk).action == "test.thing"


def test_a_request_id_from_the_caller_is_echoed_and_recorded(client, owner):
    client.force_login(owner)
    response = client.get("/billing/", HTTP_X_REQUEST_ID="abc-123")
    assert response["X-Request-Id"] == "abc-123"
    junk = client.get("/billing/", HTTP_X_REQUEST_ID="<script>")
    assert junk["X-Request-Id"] != "<script>"
