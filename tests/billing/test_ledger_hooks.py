"""The ledger's one hook for billing (usage.services._after_write): which writes
queue billing's tasks, and that they are queued only after commit."""

from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone

from billing import tasks
from tests.billing.helpers import C
from usage import services as usage_services
from usage.models import CreditAccount, GrantSource

pytestmark = pytest.mark.django_db


@pytest.fixture
def queued(monkeypatch):
    calls = []
    monkeypatch.setattr(tasks.auto_topup_check, "delay", lambda org_id: calls.append(("topup", org_id)))
    monkeypatch.setattr(tasks.overage_report, "delay", lambda org_id: calls.append(("overage", org_id)))
    return calls


def test_a_debit_crossing_the_threshold_queues_the_top_up_after_commit(org, queued, django_capture_on_commit_callbacks):
    usage_services.credits_grant(org=org, amount_micros=100 * C, source=GrantSource.PURCHASE)
    usage_services.account_set_auto_topup_threshold(org=org, threshold_micros=50 * C)

    with django_capture_on_commit_callbacks() as callbacks:
        usage_services.credits_debit(org=org, amount_micros=60 * C, idempotency_key="u1")
        assert queued == []  # nothing before commit
    for callback in callbacks:
        callback()

    assert queued == [("topup", org.pk)]


def test_writes_that_do_not_cross_the_threshold_queue_nothing(org, queued, django_capture_on_commit_callbacks):
    usage_services.credits_grant(org=org, amount_micros=100 * C, source=GrantSource.PURCHASE)
    with django_capture_on_commit_callbacks(execute=True):
        usage_services.credits_debit(org=org, amount_micros=60 * C, idempotency_key="no-threshold")
    usage_services.account_set_auto_topup_threshold(org=org, threshold_micros=50 * C)
    with django_capture_on_commit_callbacks(execute=True):
        usage_services.credits_debit(org=org, amount_micros=5 * C, idempotency_key="already-below")
        usage_services.credits_grant(org=org, amount_micros=5 * C, source=GrantSource.PROMO)

    assert queued == []


def test_debt_growing_on_an_overage_account_queues_the_overage_report(org, queued, django_capture_on_commit_callbacks):
    usage_services.account_set_plan(org=org, plan_code="pro", overage_allowed=True)
    with django_capture_on_commit_callbacks(execute=True):
        usage_services.credits_debit(org=org, amount_micros=3 * C, idempotency_key="past-zero")

    assert queued == [("overage", org.pk)]


def test_a_hard_limited_account_never_queues_an_overage_report(org, queued, django_capture_on_commit_callbacks):
    usage_services.credits_grant(org=org, amount_micros=10 * C, source=GrantSource.PURCHASE)
    hold = usage_services.hold_create(org=org, amount_micros=10 * C, expires_in=timedelta(minutes=15))
    with time_machine.travel(timezone.now() + timedelta(minutes=16)):
        usage_services.holds_expire()
    usage_services.credits_debit(org=org, amount_micros=10 * C, idempotency_key="usage:meanwhile")
    with django_capture_on_commit_callbacks(execute=True):
        # The held amount is still owed for the work done: past zero, but no overage plan.
        usage_services.hold_capture(org=org, hold_id=hold.pk, amount_micros=10 * C)

    assert CreditAccount.objects.get(org=org).debt_micros == 10 * C
    assert queued == []
