"""Balance changes become events: one per crossing, whoever writes and however often tasks run."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
import time_machine
from django.db import connection

from outbound import receivers
from outbound.models import Event
from tests.factories import OrganizationFactory
from usage import balance_changes, services
from usage.models import GrantSource
from usage.services import credits

C = 1_000_000


@pytest.fixture(params=["in_database", "python_writer"])
def debit_path(request, monkeypatch):
    monkeypatch.setattr(credits, "SERVER_DEBIT", request.param == "in_database")
    return request.param


def types(org) -> list[str]:
    return list(Event.objects.filter(org=org).order_by("sequence").values_list("type", flat=True))


def test_crossing_the_low_line_sends_balance_low_with_the_figures(org, debit_path, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        services.credits_grant(org=org, amount_micros=150 * C, source=GrantSource.PURCHASE)
    with django_capture_on_commit_callbacks(execute=True):
        services.credits_debit(org=org, amount_micros=40 * C, idempotency_key="a")  # 110: above the line
    with django_capture_on_commit_callbacks(execute=True):
        services.credits_debit(org=org, amount_micros=20 * C, idempotency_key="b")  # 90: below
    with django_capture_on_commit_callbacks(execute=True):
        services.credits_debit(org=org, amount_micros=20 * C, idempotency_key="c")  # 70: still below
    assert types(org) == ["credits.granted", "balance.replenished", "balance.low"]
    low = Event.objects.get(type="balance.low")
    assert low.payload["data"] == {
        "available": "90", "previous_available": "110", "balance": "90", "held": "0", "debt": "0",
        "low_balance_line": "100",
    }


def test_running_out_and_coming_back_sends_depleted_then_replenished(org, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        services.credits_grant(org=org, amount_micros=10 * C, source=GrantSource.PURCHASE)
    with django_capture_on_commit_callbacks(execute=True):
        services.credits_debit(org=org, amount_micros=10 * C, idempotency_key="all")
    with django_capture_on_commit_callbacks(execute=True):
        services.credits_grant(org=org, amount_micros=500 * C, source=GrantSource.PURCHASE, idempotency_key="g2")
    # 10 credits is below the low line (100): no all-clear until the second grant.
    assert types(org) == ["credits.granted", "balance.depleted", "credits.granted", "balance.replenished"]
    granted = Event.objects.filter(type="credits.granted").order_by("sequence").last()
    assert granted.payload["data"]["amount"] == "500" and granted.payload["data"]["source"] == "purchase"


def test_an_expired_hold_sends_hold_expired(org, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        services.credits_grant(org=org, amount_micros=500 * C, source=GrantSource.PURCHASE)
    with time_machine.travel("2026-03-01 12:00:00Z", tick=False) as traveller:
        with django_capture_on_commit_callbacks(execute=True):
            hold = services.hold_create(org=org, amount_micros=20 * C, expires_in=timedelta(minutes=5))
        traveller.shift(timedelta(minutes=6))
        with django_capture_on_commit_callbacks(execute=True):
            assert services.holds_expire() == 1
    event = Event.objects.get(type="hold.expired")
    assert event.payload["data"]["hold_id"] == hold.pk and event.payload["data"]["amount"] == "20"
    assert event.key == f"hold:{hold.pk}"


def test_the_task_running_twice_sends_once(org):
    change = balance_changes.BalanceChange(
        org_id=org.pk, before=balance_changes.Figures(150 * C, 0, 0), after=balance_changes.Figures(90 * C, 0, 0),
        low_line_micros=100 * C, auto_topup_threshold_micros=None, overage_allowed=False, write_id="w1",
    )
    message = receivers._change_dict(change)
    assert receivers.balance_events(message) == 1
    assert receivers.balance_events(message) == 0
    assert types(org) == ["balance.low"]


def test_a_write_that_crosses_nothing_queues_nothing(org, django_capture_on_commit_callbacks, monkeypatch):
    queued = []
    monkeypatch.setattr(receivers.balance_events, "delay", lambda change: queued.append(change))
    with django_capture_on_commit_callbacks(execute=True):
        services.credits_grant(org=org, amount_micros=500 * C, source=GrantSource.PURCHASE)
    queued.clear()
    with django_capture_on_commit_callbacks(execute=True):
        services.credits_debit(org=org, amount_micros=C, idempotency_key="small")
    assert queued == []


def test_a_write_that_crosses_the_low_line_queues_one_task_and_no_more(org, debit_path,
                                                                      django_capture_on_commit_callbacks, monkeypatch):
    """The request path pays one enqueue for a crossing; the events are made by the task."""
    with django_capture_on_commit_callbacks(execute=True):
        services.credits_grant(org=org, amount_micros=150 * C, source=GrantSource.PURCHASE)
    queued = []
    monkeypatch.setattr(receivers.balance_events, "delay", lambda change: queued.append(change))
    with django_capture_on_commit_callbacks(execute=True):
        services.credits_debit(org=org, amount_micros=60 * C, idempotency_key="cross")
    assert len(queued) == 1 and queued[0]["crossed"] == ["below_low"]
    assert not Event.objects.filter(type="balance.low").exists()  # not made on the request path


@pytest.mark.django_db(transaction=True)
def test_threads_crossing_the_low_line_together_send_one_balance_low(debit_path):
    org = OrganizationFactory()
    services.credits_grant(org=org, amount_micros=150 * C, source=GrantSource.PURCHASE)
    count = 12
    barrier = threading.Barrier(count)
    errors = []

    def work(i: int) -> None:
        try:
            barrier.wait()
            services.credits_debit(org=org, amount_micros=10 * C, idempotency_key=f"t{i}")
        except Exception as error:  # noqa: BLE001 - the test reports it
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=work, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    assert Event.objects.filter(org=org, type="balance.low").count() == 1
    assert Event.objects.filter(org=org, type="balance.depleted").count() == 0
