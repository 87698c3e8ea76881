from datetime import timedelta

import pytest
import time_machine
from django.core import mail
from django.utils import timezone

from billing import services, tasks
from billing.models import AttemptStatus, AutoTopUpSettings, Purchase, TopUpAttempt
from billing.services import topup
from billing_project.errors import InvalidRequest, PermissionDenied
from inbox.models import InboxItem
from tests.billing import stripe_builders as b
from tests.billing.helpers import C, balance, customer_id
from usage import services as usage_services
from usage.models import CreditAccount, Grant, GrantSource

pytestmark = pytest.mark.django_db


class WorkerKilled(BaseException):
    """Stands for the worker process dying: nothing after it in the task runs."""


@pytest.fixture
def card(stripe_account, fake_stripe, org):
    """The org's customer with a saved default card, and 100 bought credits."""
    cus = fake_stripe.get(customer_id(org))
    pm = fake_stripe.put(b.payment_method(customer=cus["id"]))
    cus["invoice_settings"]["default_payment_method"] = pm["id"]
    usage_services.credits_grant(org=org, amount_micros=100 * C, source=GrantSource.PURCHASE, idempotency_key="seed")
    return pm


@pytest.fixture
def enabled(card, org, owner):
    services.auto_topup_configure(org=org, enabled=True, threshold_micros=50 * C, pack_code="pack_500",
                                  monthly_cap_cents=2000, actor=owner)
    return AutoTopUpSettings.objects.get(org=org)


def spend(org, credits, key, capture):
    with capture(execute=True):  # the trigger runs after commit, as in production
        usage_services.credits_debit(org=org, amount_micros=credits * C, idempotency_key=key)


def topups(org):
    return Grant.objects.filter(account__org=org, source=GrantSource.AUTO_TOPUP)


def test_settings_need_a_billing_role_and_a_cap_of_at_least_one_pack(card, org, member):
    with pytest.raises(PermissionDenied):
        services.auto_topup_configure(org=org, enabled=True, threshold_micros=10 * C, pack_code="pack_500",
                                      monthly_cap_cents=5000, actor=member)
    with pytest.raises(InvalidRequest):
        services.auto_topup_configure(org=org, enabled=True, threshold_micros=10 * C, pack_code="pack_500",
                                      monthly_cap_cents=499, actor="test")


def test_a_debit_below_the_threshold_charges_the_saved_card_off_session_once(enabled, fake_stripe, card, org,
                                                                             django_capture_on_commit_callbacks):
    spend(org, 30, "usage:1", django_capture_on_commit_callbacks)  # 100 -> 70: above 50, nothing
    assert not TopUpAttempt.objects.exists()

    spend(org, 30, "usage:2", django_capture_on_commit_callbacks)  # 70 -> 40: crosses 50

    attempt = TopUpAttempt.objects.get()
    assert attempt.status == AttemptStatus.SUCCEEDED
    params = fake_stripe.created["payment_intent.params"][-1]
    assert (params["customer"], params["payment_method"]) == (card["customer"], card["id"])
    assert (params["off_session"], params["confirm"], params["amount"]) == ("true", "true", "500")
    assert params["metadata"]["tollgate_attempt"] == str(attempt.pk)
    assert params["hooks"]["inputs"]["tax"]["calculation"].startswith("taxcalc_")
    assert balance(org) == (40 + 500) * C
    assert topups(org).get().amount_micros == 500 * C

    spend(org, 1, "usage:3", django_capture_on_commit_callbacks)  # still above the threshold: nothing more
    assert TopUpAttempt.objects.count() == 1
    [receipt] = [m for m in mail.outbox if "receipt" in m.subject.lower()]
    assert "500 credits" in receipt.body and "(auto top-up)" in receipt.subject


def test_the_webhook_after_the_task_sends_no_second_receipt(enabled, fake_stripe, org,
                                                            django_capture_on_commit_callbacks):
    spend(org, 60, "usage:1", django_capture_on_commit_callbacks)
    attempt = TopUpAttempt.objects.get()
    with django_capture_on_commit_callbacks(execute=True):
        topup.topup_intent_update(intent={"id": attempt.payment_intent_id, "status": "succeeded",
                                          "metadata": {"tollgate_attempt": str(attempt.pk),
                                                       "tollgate_org_id": str(org.pk)}})

    assert sum("receipt" in m.subject.lower() for m in mail.outbox) == 1


def test_tax_is_added_on_top_of_the_pack_price(enabled, fake_stripe, org, django_capture_on_commit_callbacks):
    fake_stripe.tax_cents = 40
    spend(org, 60, "usage:1", django_capture_on_commit_callbacks)

    assert fake_stripe.created["payment_intent.params"][-1]["amount"] == "540"
    assert topups(org).get().amount_micros == 500 * C  # credits are the pack's, tax is tax


def test_a_task_killed_after_creating_the_payment_intent_and_retried_makes_one_charge(
        enabled, fake_stripe, org, monkeypatch, django_capture_on_commit_callbacks):
    real_update = topup.topup_intent_update
    calls = {"n": 0}

    def dies_once(**kwargs):
        calls["n"] += 1
        if calls["n"] == 1:
            raise WorkerKilled()  # Stripe made the intent; the worker died before recording it
        return real_update(**kwargs)

    monkeypatch.setattr(topup, "topup_intent_update", dies_once)
    with pytest.raises(WorkerKilled):
        spend(org, 60, "usage:1", django_capture_on_commit_callbacks)
    attempt = TopUpAttempt.objects.get()
    assert attempt.status == AttemptStatus.PENDING and attempt.payment_intent_id == ""
    assert len(fake_stripe.created["payment_intent"]) == 1

    tasks.auto_topup_check.delay(org.pk)  # the broker redelivers the task (acks late)

    assert fake_stripe.count("POST", "/v1/payment_intents") == 2  # sent twice...
    assert len(fake_stripe.created["payment_intent"]) == 1  # ...charged once: same idempotency key
    attempt.refresh_from_db()
    assert attempt.status == AttemptStatus.SUCCEEDED
    assert attempt.payment_intent_id == fake_stripe.created["payment_intent"][0]["id"]
    assert topups(org).count() == 1 and Purchase.objects.filter(kind="auto_topup").count() == 1


def test_the_succeeded_webhook_and_the_task_grant_once(enabled, webhooks, fake_stripe, org,
                                                       django_capture_on_commit_callbacks):
    spend(org, 60, "usage:1", django_capture_on_commit_callbacks)
    intent = fake_stripe.created["payment_intent"][0]

    webhooks.send("payment_intent.succeeded", intent)

    assert topups(org).count() == 1


def test_a_stale_open_attempt_is_charged_again_with_its_key_by_the_retry_sweep(enabled, fake_stripe, org, monkeypatch,
                                                                               django_capture_on_commit_callbacks):
    monkeypatch.setattr(topup, "topup_charge", lambda **kw: None)  # the task is lost before it charges
    spend(org, 60, "usage:1", django_capture_on_commit_callbacks)
    monkeypatch.undo()
    attempt = TopUpAttempt.objects.get()

    with time_machine.travel(timezone.now() + timedelta(minutes=11)):
        assert services.auto_topup_retry_due() == 1

    attempt.refresh_from_db()
    assert attempt.status == AttemptStatus.SUCCEEDED
    assert len(fake_stripe.created["payment_intent"]) == 1


def test_declines_back_off_then_stop_and_tell_people(enabled, fake_stripe, org, django_capture_on_commit_callbacks):
    fake_stripe.payment_intent_outcome = "card_declined"
    with time_machine.travel(timezone.now(), tick=False) as clock:
        spend(org, 60, "usage:1", django_capture_on_commit_callbacks)
        first = TopUpAttempt.objects.get()
        assert (first.status, first.failure_code) == (AttemptStatus.FAILED, "insufficient_funds")
        assert first.retry_at == timezone.now() + timedelta(hours=1)

        spend(org, 1, "usage:2", django_capture_on_commit_callbacks)  # no new trigger charges during back-off
        tasks.auto_topup_check.delay(org.pk)
        assert TopUpAttempt.objects.count() == 1

        for number, wait in [(2, timedelta(hours=1)), (3, timedelta(hours=6)), (4, timedelta(hours=24))]:
            clock.shift(wait + timedelta(seconds=1))
            with django_capture_on_commit_callbacks(execute=True):
                tasks.auto_topup_retry.delay()
            latest = TopUpAttempt.objects.order_by("-id").first()
            assert (latest.number, latest.status) == (number, AttemptStatus.FAILED)

        assert latest.retry_at is None
        settings_row = AutoTopUpSettings.objects.get(org=org)
        assert "declined 4 times" in settings_row.paused_reason
        assert CreditAccount.objects.get(org=org).auto_topup_threshold_micros is None
        assert any("auto top-up stopped" in m.subject.lower() for m in mail.outbox)
        assert len({a.idempotency_key for a in TopUpAttempt.objects.all()}) == 4
        assert not topups(org).exists()


def test_a_card_that_needs_3d_secure_stops_top_ups_and_tells_people(enabled, fake_stripe, org,
                                                                    django_capture_on_commit_callbacks):
    fake_stripe.payment_intent_outcome = "authentication_required"
    spend(org, 60, "usage:1", django_capture_on_commit_callbacks)

    attempt = TopUpAttempt.objects.get()
    assert (attempt.status, attempt.retry_at) == (AttemptStatus.ACTION_REQUIRED, None)
    assert "3-D Secure" in AutoTopUpSettings.objects.get(org=org).paused_reason
    [told] = [m for m in mail.outbox if "auto top-up" in m.subject.lower()]
    assert "auto top-up stopped" in told.subject.lower() and "confirm" in told.subject.lower()
    assert InboxItem.objects.get(org=org, kind="auto_topup_action_required").link == "/billing/top-up/"

    spend(org, 1, "usage:2", django_capture_on_commit_callbacks)
    tasks.auto_topup_check.delay(org.pk)
    assert TopUpAttempt.objects.count() == 1


def test_the_monthly_cap_is_never_exceeded(card, fake_stripe, org, owner, django_capture_on_commit_callbacks):
    services.auto_topup_configure(org=org, enabled=True, threshold_micros=50 * C, pack_code="pack_500",
                                  monthly_cap_cents=999, actor=owner)  # room for one $5 pack
    spend(org, 60, "usage:1", django_capture_on_commit_callbacks)
    assert topups(org).count() == 1

    spend(org, 500, "usage:2", django_capture_on_commit_callbacks)  # below the threshold again
    spend(org, 1, "usage:3", django_capture_on_commit_callbacks)

    assert topups(org).count() == 1
    assert len(fake_stripe.created["payment_intent"]) == 1
    assert TopUpAttempt.objects.filter(failure_code="monthly_cap_reached").count() == 1
    assert topup.spent_this_month_cents(org.pk) == 500
    assert sum(1 for m in mail.outbox if "cap reached" in m.subject.lower()) == 1


def test_no_saved_card_means_no_charge_and_a_notice(stripe_account, fake_stripe, org, owner,
                                                    django_capture_on_commit_callbacks):
    customer_id(org)
    usage_services.credits_grant(org=org, amount_micros=100 * C, source=GrantSource.PURCHASE, idempotency_key="seed")
    services.auto_topup_configure(org=org, enabled=True, threshold_micros=50 * C, pack_code="pack_500",
                                  monthly_cap_cents=2000, actor=owner)
    spend(org, 60, "usage:1", django_capture_on_commit_callbacks)

    attempt = TopUpAttempt.objects.get()
    assert (attempt.status, attempt.failure_code) == (AttemptStatus.CANCELED, "no_payment_method")
    assert not fake_stripe.created["payment_intent"]


def test_one_attempt_stripe_cannot_decide_does_not_stop_the_sweep(enabled, fake_stripe, org, other_org, monkeypatch,
                                                                   django_capture_on_commit_callbacks):
    monkeypatch.setattr(topup, "topup_charge", lambda **kw: None)  # both tasks are lost before they charge
    spend(org, 60, "usage:1", django_capture_on_commit_callbacks)
    monkeypatch.undo()
    healthy = TopUpAttempt.objects.get(org=org)
    # Another org's open attempt names an intent Stripe answers 404 for: a StripeError.
    broken = TopUpAttempt.objects.create(
        org=other_org, pack=healthy.pack, credits_micros=healthy.credits_micros, amount_cents=healthy.amount_cents,
        idempotency_key="broken-1", status=AttemptStatus.PENDING, number=1, payment_intent_id="pi_gone",
    )
    TopUpAttempt.objects.filter(pk=broken.pk).update(created_at=healthy.created_at)

    with time_machine.travel(timezone.now() + timedelta(minutes=11)):
        assert services.auto_topup_retry_due() == 1

    healthy.refresh_from_db()
    broken.refresh_from_db()
    assert healthy.status == AttemptStatus.SUCCEEDED
    assert broken.status == AttemptStatus.PENDING  # left open for the next sweep


def test_an_intent_whose_metadata_names_another_orgs_attempt_grants_nothing(enabled, webhooks, fake_stripe, org,
                                                                             other_org,
                                                                             django_capture_on_commit_callbacks):
    spend(org, 60, "usage:1", django_capture_on_commit_callbacks)
    attempt = TopUpAttempt.objects.get(org=org)
    foreign = b.payment_intent(amount=500, status="succeeded", metadata={
        "tollgate_org_id": str(other_org.pk), "tollgate_kind": "auto_topup", "tollgate_attempt": str(attempt.pk)})

    webhooks.send("payment_intent.succeeded", foreign)

    assert topups(org).count() == 1  # the org's own charge only
    attempt.refresh_from_db()
    assert attempt.payment_intent_id == fake_stripe.created["payment_intent"][0]["id"]


def test_a_monthly_cap_beyond_what_is_kept_is_refused(card, org, owner):
    with pytest.raises(InvalidRequest) as error:
        services.auto_topup_configure(org=org, enabled=True, threshold_micros=10 * C, pack_code="pack_500",
                                      monthly_cap_cents=10**11, actor=owner)
    assert error.value.code == "invalid_cap"
