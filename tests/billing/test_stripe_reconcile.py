"""Reconciliation with Stripe: dj-stripe's tables against the ledger.

The clean installation is built the way production gets there (signed
webhooks to dj-stripe's endpoint, the fake Stripe behind it); each kind of
drift is then seeded by writing one side only: a dj-stripe row synced from a
Stripe-shaped dict without its webhook handler, or a ledger row without its
Stripe object."""

from datetime import timedelta

import pytest
import time_machine
from django.core import mail
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db.models import F
from django.utils import timezone
from djstripe import models as djstripe_models

from billing import services
from billing.models import DriftKind, Pack, Purchase, ReconciliationRun, RunStatus
from billing.services import reconciliation
from tests.billing import stripe_builders as b
from tests.billing.helpers import (
    C,
    balance,
    invoice_for,
    paid_session,
    plan_price,
    start_pack_checkout,
    subscription_for,
)
from tests.factories import UserFactory
from usage import services as usage_services
from usage.models import CreditAccount, GrantSource

pytestmark = pytest.mark.django_db

NOW = timedelta(0)  # check everything, however young (the default leaves the last hour to its webhooks)


def reconcile(**kwargs) -> ReconciliationRun:
    return services.stripe_reconcile(settle=NOW, trigger="test", **kwargs)


def kinds(run: ReconciliationRun) -> list[str]:
    return sorted(run.findings.values_list("kind", flat=True))


def sync(model, data: dict):
    """Put a Stripe object in dj-stripe's tables as a sync would, without any webhook handler."""
    return model.sync_from_stripe_data(data)


def buy(webhooks, fake_stripe, org, owner, code="pack_2000") -> tuple[Purchase, dict]:
    start = start_pack_checkout(org, owner, code)
    session = paid_session(fake_stripe, start)
    webhooks.send("checkout.session.completed", session)
    intent = fake_stripe.get(session["payment_intent"])
    return Purchase.objects.get(checkout_session_id=session["id"]), fake_stripe.get(intent["latest_charge"])


@pytest.fixture
def on_pro(webhooks, fake_stripe, org, owner):
    """Pro (overage allowed), its first invoice paid: the period's allowance granted."""
    sub = subscription_for(fake_stripe, org, "pro", with_overage=True)
    webhooks.send("customer.subscription.created", sub)
    webhooks.send("invoice.paid", invoice_for(fake_stripe, sub))
    return sub


@pytest.fixture
def clean(on_pro, webhooks, fake_stripe, org, owner, django_capture_on_commit_callbacks):
    """Everything Stripe and the ledger can agree on: a pack bought, half refunded; another
    bought, disputed and lost; a paid invoice's allowance; overage reported and settled."""
    refunded, charge = buy(webhooks, fake_stripe, org, owner)
    webhooks.send("charge.refunded", dict(charge, amount_refunded=charge["amount"] // 2))
    disputed, charge = buy(webhooks, fake_stripe, org, owner, "pack_500")
    dispute = b.dispute(amount=charge["amount"], charge=charge["id"], payment_intent=disputed.payment_intent_id)
    webhooks.send("charge.dispute.created", dispute)
    webhooks.send("charge.dispute.closed", dict(dispute, status="lost"))
    with django_capture_on_commit_callbacks(execute=True):
        usage_services.credits_debit(org=org, amount_micros=balance(org) + 3 * C, idempotency_key="usage:past-zero")
    return {"refunded": refunded, "disputed": disputed, "dispute": dispute}


def test_it_finds_nothing_on_clean_data(clean, org):
    assert djstripe_models.Session.objects.count() == 2 and djstripe_models.Invoice.objects.count() == 1
    assert CreditAccount.objects.get(org=org).debt_micros == 0  # the 3 credits were reported and settled

    run = reconcile()

    assert kinds(run) == []
    assert run.status == RunStatus.CLEAN and run.finished_at is not None
    assert run.checked["checkout_sessions"] == 2 and run.checked["invoices"] == 1
    assert run.checked["refunded_charges"] == 1 and run.checked["lost_disputes"] == 1


def test_it_finds_a_paid_checkout_that_granted_nothing(clean, fake_stripe, org, owner):
    start = start_pack_checkout(org, owner, "pack_500")
    session = sync(djstripe_models.Session, paid_session(fake_stripe, start))

    run = reconcile()

    [finding] = run.findings.all()
    assert finding.kind == DriftKind.PAID_WITHOUT_GRANT
    assert (finding.stripe_id, finding.stripe_pk, finding.org_id) == (session.id, session.djstripe_id, org.pk)
    assert (finding.local_model, finding.local_pk) == ("billing.checkoutstart", start.pk)
    assert finding.stripe_admin_url == f"/admin/djstripe/session/{session.djstripe_id}/change/"
    assert finding.local_admin_url == f"/admin/billing/checkoutstart/{start.pk}/change/"
    assert run.status == RunStatus.DRIFT and run.findings_count == 1


def test_it_finds_a_succeeded_auto_top_up_intent_that_granted_nothing(clean, org):
    intent = sync(djstripe_models.PaymentIntent, b.payment_intent(
        status="succeeded", metadata={"tollgate_org_id": str(org.pk), "tollgate_kind": "auto_topup"}))

    [finding] = reconcile().findings.all()

    assert (finding.kind, finding.stripe_id, finding.org_id) == (DriftKind.PAID_WITHOUT_GRANT, intent.id, org.pk)


def test_it_finds_a_paid_invoice_whose_allowance_was_not_granted(clean, org):
    # The next period's invoice, paid, in dj-stripe's tables; invoice.paid never ran for it.
    invoice = djstripe_models.Invoice.objects.get()
    data = invoice.stripe_data
    line = data["lines"]["data"][0]
    line["period"] = {"start": line["period"]["end"], "end": line["period"]["end"] + 30 * 86400}
    invoice.djstripe_id, invoice.id = None, b.new_id("in")
    invoice.stripe_data = dict(data, id=invoice.id)
    invoice.save()

    [finding] = reconcile().findings.all()

    assert (finding.kind, finding.stripe_id, finding.stripe_pk) == (
        DriftKind.PAID_WITHOUT_GRANT, invoice.id, invoice.djstripe_id)
    assert (finding.local_model, finding.org_id) == ("billing.billingstate", org.pk)
    assert "Pro" in finding.message


def test_an_invoice_a_later_plan_change_in_its_period_replaced_is_not_drift(clean, org):
    # Starter was invoiced first for this period, then Pro replaced it: only Pro's allowance stands.
    invoice = djstripe_models.Invoice.objects.get()
    data = invoice.stripe_data
    data["lines"]["data"][0]["pricing"]["price_details"]["price"] = plan_price("starter").stripe_price_id
    invoice.djstripe_id, invoice.id = None, b.new_id("in")
    invoice.stripe_data = dict(data, id=invoice.id, created=data["created"] - 3600)
    invoice.save()

    assert kinds(reconcile()) == []


def test_it_finds_one_payment_granted_twice(clean, org):
    purchase = clean["refunded"]
    usage_services.credits_grant(org=org, amount_micros=2000 * C, source=GrantSource.PURCHASE,
                                 idempotency_key="replayed-by-hand", stripe_object_id=purchase.payment_intent_id)

    [finding] = reconcile().findings.all()

    assert (finding.kind, finding.stripe_id) == (DriftKind.GRANTED_TWICE, purchase.payment_intent_id)
    assert finding.stripe_model == "paymentintent" and finding.stripe_pk is not None
    assert "2 grants" in finding.message


def test_it_finds_a_grant_claiming_a_payment_stripe_does_not_have(clean, org):
    pack = Pack.objects.get(code="pack_500")
    purchase = services.pack_fulfil(org=org, pack=pack, checkout_session_id="cs_test_never_paid",
                                    payment_intent_id="pi_test_never_paid")

    [finding] = reconcile().findings.all()

    assert (finding.kind, finding.local_model, finding.local_pk) == (
        DriftKind.GRANT_WITHOUT_PAYMENT, "billing.purchase", purchase.pk)
    assert finding.stripe_id == "cs_test_never_paid" and "not in dj-stripe" in finding.message


def test_it_finds_a_grant_claiming_a_payment_that_failed(clean, org):
    intent = sync(djstripe_models.PaymentIntent, b.payment_intent(
        status="requires_payment_method", amount_received=0,
        metadata={"tollgate_org_id": str(org.pk), "tollgate_kind": "auto_topup"}))
    pack = Pack.objects.get(code="pack_500")
    entry = usage_services.credits_grant(org=org, amount_micros=pack.credits_micros, source=GrantSource.AUTO_TOPUP,
                                         idempotency_key="topup:failed", stripe_object_id=intent.id)
    purchase = Purchase.objects.create(org=org, kind="auto_topup", pack=pack, credits_micros=pack.credits_micros,
                                       amount_cents=pack.amount_cents, payment_intent_id=intent.id, grant=entry.grant)

    [finding] = reconcile().findings.all()

    assert (finding.kind, finding.stripe_id, finding.local_pk) == (DriftKind.GRANT_WITHOUT_PAYMENT, intent.id, purchase.pk)
    assert "requires_payment_method" in finding.message


def test_it_finds_a_refund_without_its_clawback(clean, fake_stripe, org, owner, webhooks):
    purchase, charge = buy(webhooks, fake_stripe, org, owner, "pack_500")
    sync(djstripe_models.Charge, dict(charge, amount_refunded=charge["amount"], refunded=True))  # no charge.refunded

    [finding] = reconcile().findings.all()

    assert (finding.kind, finding.stripe_id, finding.local_pk) == (
        DriftKind.REFUND_NOT_CLAWED_BACK, charge["id"], purchase.pk)
    assert "500 credits" in finding.message


def test_it_finds_a_lost_dispute_without_its_clawback(clean, fake_stripe, org, owner, webhooks):
    purchase, charge = buy(webhooks, fake_stripe, org, owner, "pack_500")
    dispute = sync(djstripe_models.Dispute, b.dispute(amount=charge["amount"], charge=charge["id"],
                                                      payment_intent=purchase.payment_intent_id, status="lost"))

    [finding] = reconcile().findings.all()

    assert (finding.kind, finding.stripe_id, finding.stripe_pk) == (
        DriftKind.DISPUTE_NOT_CLAWED_BACK, dispute.id, dispute.djstripe_id)
    assert (finding.local_model, finding.local_pk) == ("billing.purchase", purchase.pk)


def test_it_finds_a_lost_dispute_whose_credits_were_given_back(clean):
    record = clean["disputed"].disputes.get()
    usage_services.credits_unfreeze(grant=clean["disputed"].grant, idempotency_key="unfrozen-by-mistake",
                                    stripe_object_id=record.dispute_id)

    [finding] = reconcile().findings.all()

    assert (finding.kind, finding.local_model) == (DriftKind.DISPUTE_NOT_CLAWED_BACK, "billing.disputerecord")
    assert "unfrozen" in finding.message


def test_it_finds_overage_debt_not_reported(clean, org):
    # The receiver that queues the report runs after commit, which never comes here.
    usage_services.credits_debit(org=org, amount_micros=5 * C, idempotency_key="usage:unreported")

    [finding] = reconcile().findings.all()

    account = CreditAccount.objects.get(org=org)
    assert (finding.kind, finding.local_model, finding.local_pk) == (
        DriftKind.OVERAGE_NOT_REPORTED, "usage.creditaccount", account.pk)
    assert finding.stripe_model == "customer" and "5 credits" in finding.message


def test_it_leaves_overage_debt_younger_than_the_settle_time_to_the_beat(clean, org):
    usage_services.credits_debit(org=org, amount_micros=5 * C, idempotency_key="usage:unreported")

    assert kinds(services.stripe_reconcile(trigger="test")) == []
    with time_machine.travel(timezone.now() + timedelta(hours=2)):
        assert kinds(services.stripe_reconcile(trigger="test")) == [DriftKind.OVERAGE_NOT_REPORTED]


def test_it_finds_an_overage_settlement_without_its_report(clean, org):
    usage_services.credits_grant(org=org, amount_micros=2 * C, source=GrantSource.OVERAGE_INVOICED,
                                 idempotency_key="overage:made-up", stripe_object_id="tollgate-overage-made-up")

    [finding] = reconcile().findings.all()

    assert (finding.kind, finding.local_model) == (DriftKind.OVERAGE_NOT_SETTLED, "usage.grant")


def test_it_finds_a_cached_balance_that_differs_from_the_ledger(clean, org):
    CreditAccount.objects.filter(org=org).update(balance_micros=F("balance_micros") + 1)

    found = reconcile().findings.all()

    assert {f.kind for f in found} == {DriftKind.CACHED_BALANCE}
    assert any("balance cached" in f.message for f in found)
    assert all(f.local_model == "usage.creditaccount" for f in found)


def test_it_checks_only_what_was_made_since_the_date_but_always_the_cached_balances(clean, fake_stripe, org, owner):
    sync(djstripe_models.Session, paid_session(fake_stripe, start_pack_checkout(org, owner, "pack_500")))
    CreditAccount.objects.filter(org=org).update(balance_micros=F("balance_micros") + 1)

    run = reconcile(since=timezone.now() + timedelta(minutes=1))

    assert set(kinds(run)) == {DriftKind.CACHED_BALANCE}


def test_it_reads_a_page_at_a_time_and_misses_nothing(clean, fake_stripe, org, owner, monkeypatch):
    first = sync(djstripe_models.Session, paid_session(fake_stripe, start_pack_checkout(org, owner, "pack_500")))
    second = sync(djstripe_models.Session, paid_session(fake_stripe, start_pack_checkout(org, owner, "pack_500")))
    monkeypatch.setattr(reconciliation, "CHUNK", 1)

    run = reconcile()

    assert sorted(run.findings.values_list("stripe_id", flat=True)) == sorted([first.id, second.id])
    assert run.checked["checkout_sessions"] == 4 and run.checked["purchases"] == 2


def test_it_tells_staff_of_drift_once_per_run(clean, org, django_capture_on_commit_callbacks):
    UserFactory(email="finance@tollgate.test", is_staff=True)
    UserFactory(email="former@tollgate.test", is_staff=True, is_active=False)
    CreditAccount.objects.filter(org=org).update(balance_micros=F("balance_micros") + 1)
    mail.outbox.clear()

    with django_capture_on_commit_callbacks(execute=True):
        run = reconcile()

    [message] = mail.outbox
    assert message.to == ["finance@tollgate.test"]
    assert "found" in message.subject and "Cached balance differs from the ledger" in message.body
    assert f"/admin/backoffice/reconciliation/?run={run.pk}" in message.body


def test_it_tells_nobody_when_there_is_no_drift(clean, django_capture_on_commit_callbacks):
    UserFactory(email="finance@tollgate.test", is_staff=True)
    mail.outbox.clear()

    with django_capture_on_commit_callbacks(execute=True):
        reconcile()

    assert mail.outbox == []


# --- the command --------------------------------------------------------------------


def test_the_command_exits_zero_on_clean_data(clean, capsys):
    with time_machine.travel(timezone.now() + timedelta(hours=2)):
        call_command("reconcile_stripe")

    assert "no drift" in capsys.readouterr().out
    assert ReconciliationRun.objects.get().trigger == "command"


def test_the_command_exits_non_zero_listing_the_drift(clean, fake_stripe, org, owner, capsys):
    session = sync(djstripe_models.Session, paid_session(fake_stripe, start_pack_checkout(org, owner, "pack_500")))

    with time_machine.travel(timezone.now() + timedelta(hours=2)), pytest.raises(CommandError) as raised:
        call_command("reconcile_stripe", "--since", timezone.now().date().isoformat())

    assert raised.value.returncode == 1 and "1 drift(s)" in str(raised.value)
    assert session.id in capsys.readouterr().err


def test_the_command_refuses_a_date_it_cannot_read(db):
    with pytest.raises(CommandError, match="--since takes a date"):
        call_command("reconcile_stripe", "--since", "last tuesday")
    assert not ReconciliationRun.objects.exists()


# --- the schedule -----------------------------------------------------------------


def test_beat_runs_it_nightly_instead_of_the_ledger_check_alone(settings):
    tasks = [entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()]

    assert tasks.count("billing.stripe_reconcile") == 1
    assert "usage.ledger_reconcile" not in tasks
    [entry] = [e for e in settings.CELERY_BEAT_SCHEDULE.values() if e["task"] == "billing.stripe_reconcile"]
    assert entry["schedule"].hour == {3}


def test_the_migration_drops_the_beat_row_of_the_ledger_check_alone(db):
    """django-celery-beat keeps a row for every entry it ever read from the settings."""
    import importlib

    from django.apps import apps
    from django_celery_beat.models import CrontabSchedule, PeriodicTask

    nightly = CrontabSchedule.objects.create(minute="17", hour="3")
    PeriodicTask.objects.create(name="ledger-reconcile", task="usage.ledger_reconcile", crontab=nightly)
    PeriodicTask.objects.create(name="stripe-reconcile", task="billing.stripe_reconcile", crontab=nightly)

    importlib.import_module("billing.migrations.0008_reconciliation_runs").drop_ledger_only_beat_entry(apps, None)

    assert list(PeriodicTask.objects.values_list("task", flat=True)) == ["billing.stripe_reconcile"]
