"""A member's cap refusing a debit becomes one usage.limit_reached per member and month."""

from __future__ import annotations

import pytest
import time_machine

from billing_project.errors import TollgateError
from outbound.models import Event
from usage import services
from usage.errors import SpendLimitReached
from usage.models import GrantSource
from usage.services import credits

C = 1_000_000


@pytest.fixture(params=["in_database", "python_writer"])
def debit_path(request, monkeypatch):
    monkeypatch.setattr(credits, "SERVER_DEBIT", request.param == "in_database")
    return request.param


@pytest.fixture
def capped(org, owner, member):
    services.credits_grant(org=org, amount_micros=1000 * C, source=GrantSource.PURCHASE)
    services.member_limit_set(org=org, member=member, monthly_limit_micros=10 * C, actor=owner)
    return member


def test_a_cap_reached_is_told_once_a_month(org, capped, debit_path, django_capture_on_commit_callbacks):
    with time_machine.travel("2026-03-10 12:00:00Z", tick=False) as traveller:
        with django_capture_on_commit_callbacks(execute=True):
            services.credits_debit(org=org, amount_micros=8 * C, idempotency_key="a", member=capped)
        for key in ("b", "c"):
            with django_capture_on_commit_callbacks(execute=True), pytest.raises(SpendLimitReached):
                services.credits_debit(org=org, amount_micros=5 * C, idempotency_key=key, member=capped)
        [event] = Event.objects.filter(type="usage.limit_reached")
        assert event.payload["data"] == {
            "scope": "member", "member_id": capped.pk, "period": "2026-03", "limit": "10", "spent": "8",
            "required": "5",
        }
        traveller.move_to("2026-04-02 12:00:00Z")
        with django_capture_on_commit_callbacks(execute=True):
            services.credits_debit(org=org, amount_micros=8 * C, idempotency_key="d", member=capped)
        with django_capture_on_commit_callbacks(execute=True), pytest.raises(SpendLimitReached):
            services.credits_debit(org=org, amount_micros=5 * C, idempotency_key="e", member=capped)
    assert list(Event.objects.filter(type="usage.limit_reached").order_by("sequence")
                .values_list("payload__data__period", flat=True)) == ["2026-03", "2026-04"]


def test_a_hold_refused_by_the_cap_is_told(org, capped, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True), pytest.raises(TollgateError):
        services.hold_create(org=org, amount_micros=20 * C, member=capped)
    assert Event.objects.filter(type="usage.limit_reached").count() == 1


@pytest.fixture
def rate_card(db):
    from usage.services import rates

    rates.clear_cache()
    rates.load_card_data(rates.read_data_file())
    yield
    rates.clear_cache()


def test_usage_events_refused_by_the_cap_are_told_single_and_in_a_batch(
    org, capped, rate_card, debit_path, django_capture_on_commit_callbacks,
):
    from decimal import Decimal

    from usage.services import UsageInput

    def event(key):
        return UsageInput(idempotency_key=key, meter="action.xl", quantity=Decimal(1), member=capped)

    with django_capture_on_commit_callbacks(execute=True):
        items = services.usage_record_batch(org=org, events=[event(f"b{i}") for i in range(3)])
    assert any(isinstance(item.error, SpendLimitReached) for item in items)
    assert Event.objects.filter(type="usage.limit_reached").count() == 1
    Event.objects.all().delete()
    with django_capture_on_commit_callbacks(execute=True), pytest.raises(SpendLimitReached):
        services.usage_record(org=org, event=event("single"))
    assert Event.objects.filter(type="usage.limit_reached").count() == 1
