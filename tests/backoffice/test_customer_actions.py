"""The customer page's actions: each needs a reason, goes through its service,
writes its audit row and has its effect; a refused form changes nothing."""

from datetime import timedelta

import pytest
from django.core import mail
from django.test import TestCase
from django.utils import timezone

from billing import services as billing_services
from billing.models import BillingState, Purchase, RefundRecord
from orgs.models import AuditEvent
from tests.billing.helpers import C, balance, invoice_for, paid_session, start_pack_checkout, subscription_for
from usage.models import Grant, GrantSource, LedgerEntry

pytestmark = pytest.mark.django_db


def act(client, org, action: str, data: dict):
    with TestCase.captureOnCommitCallbacks(execute=True):
        return client.post(f"/admin/backoffice/customers/{org.pk}/{action}/",
                           {f"{action}-{key}": value for key, value in data.items()})


# --- adjust ---------------------------------------------------------------------


def test_finance_adjusts_credits_with_a_reason(finance_client, finance, org):
    response = act(finance_client, org, "adjust", {"credits": "25", "reason": "Goodwill after an outage", "token": "a1"})

    assert response.status_code == 302 and response["Location"] == f"/admin/backoffice/customers/{org.pk}/"
    assert balance(org) == 25 * C
    entry = LedgerEntry.objects.get(account__org=org)
    assert entry.staff_user == finance and entry.reason == "Goodwill after an outage"
    assert AuditEvent.objects.filter(org=org, action="credits.granted", actor_user_id=finance.pk, source="admin").exists()


def test_a_form_sent_twice_adjusts_once(finance_client, org):
    for _ in range(2):
        act(finance_client, org, "adjust", {"credits": "25", "reason": "Goodwill", "token": "same"})

    assert balance(org) == 25 * C


@pytest.mark.parametrize("action,data", [
    ("adjust", {"credits": "25", "reason": "  ", "token": "a"}),
    ("promo", {"credits": "25", "expires_at": "2099-01-01 00:00", "reason": "", "token": "b"}),
    ("pause", {"reason": ""}),
])
def test_every_action_requires_a_reason(finance_client, org, action, data):
    response = act(finance_client, org, action, data)

    assert response.status_code == 400 and "This field is required." in response.content.decode()
    assert balance(org) == 0 and not AuditEvent.objects.filter(org=org).exists()


def test_taking_back_more_than_is_available_is_refused_on_the_page(finance_client, org):
    response = act(finance_client, org, "adjust", {"credits": "-5", "reason": "Mistake", "token": "t"})

    assert response.status_code == 400 and "available to take back" in response.content.decode()


# --- promo ------------------------------------------------------------------------


def test_finance_grants_promotional_credits_that_expire(finance_client, finance, org):
    response = act(finance_client, org, "promo", {"credits": "500", "expires_at": "2099-01-31 23:59",
                                                  "reason": "Conference", "token": "p1"})

    assert response.status_code == 302
    grant = Grant.objects.get(account__org=org)
    assert grant.source == GrantSource.PROMO and grant.amount_micros == 500 * C and grant.expires_at.year == 2099
    assert AuditEvent.objects.get(org=org, action="billing.promo_granted").data["reason"] == "Conference"


def test_a_promo_in_the_past_is_refused(finance_client, org):
    response = act(finance_client, org, "promo", {"credits": "5", "expires_at": "2001-01-01 00:00",
                                                  "reason": "Late", "token": "p"})

    assert response.status_code == 400 and "future" in response.content.decode()
    assert not Grant.objects.filter(account__org=org).exists()


# --- extend trial -------------------------------------------------------------------


def test_finance_extends_a_trial_and_its_allowance_keeps_pace(catalog, finance_client, org):
    state = billing_services.trial_start(org=org)
    ends = state.trial_ends_at

    response = act(finance_client, org, "extend-trial", {"days": "10", "reason": "Needs more time to evaluate"})

    assert response.status_code == 302
    state.refresh_from_db()
    assert state.trial_ends_at == ends + timedelta(days=10) == state.current_period_end
    trial = Grant.objects.get(account__org=org, source=GrantSource.TRIAL)
    assert trial.expires_at == state.trial_ends_at
    row = AuditEvent.objects.get(org=org, action="billing.trial_extended")
    assert row.data["days"] == 10 and row.data["reason"] == "Needs more time to evaluate"


def test_a_trial_is_extended_by_one_to_ninety_days(catalog, finance, org):
    from billing_project.errors import InvalidRequest

    billing_services.trial_start(org=org)
    with pytest.raises(InvalidRequest):
        billing_services.trial_extend(org=org, days=91, reason="Too long", staff_user=finance)


def test_an_org_not_in_a_trial_cannot_have_one_extended(catalog, finance, org):
    from billing_project.errors import Conflict

    with pytest.raises(Conflict) as refused:
        billing_services.trial_extend(org=org, days=3, reason="Why not", staff_user=finance)
    assert refused.value.code == "not_trialing"


# --- resend invoice -------------------------------------------------------------------


def test_finance_sends_an_invoice_link_to_the_billing_contacts(webhooks, fake_stripe, finance_client, org, owner, member):
    sub = subscription_for(fake_stripe, org, "starter")
    webhooks.send("customer.subscription.created", sub)
    invoice = invoice_for(fake_stripe, sub)
    webhooks.send("invoice.paid", invoice)
    mail.outbox.clear()

    response = act(finance_client, org, "resend-invoice", {"invoice": invoice["id"], "reason": "Lost the e-mail"})

    assert response.status_code == 302
    (sent,) = mail.outbox
    assert sent.to == ["owner@acme.test"] and invoice["hosted_invoice_url"] in sent.body
    assert AuditEvent.objects.get(org=org, action="billing.invoice_link_sent").data == {
        "invoice": invoice["id"], "reason": "Lost the e-mail"}


def test_another_orgs_invoice_is_not_found(finance, org):
    from billing_project.errors import NotFound

    with pytest.raises(NotFound):
        billing_services.invoice_link_resend(org=org, invoice_id="in_theirs", reason="x", staff_user=finance)


# --- refund ---------------------------------------------------------------------------------


@pytest.fixture
def bought(webhooks, fake_stripe, org, owner):
    session = paid_session(fake_stripe, start_pack_checkout(org, owner, "pack_500"))
    webhooks.send("checkout.session.completed", session)
    return Purchase.objects.get(org=org)


def test_a_refund_goes_to_stripe_then_the_webhook_claws_the_credits_back(webhooks, fake_stripe, finance_client, org,
                                                                            bought):
    assert balance(org) > 0
    before = balance(org)

    response = act(finance_client, org, "refund", {"purchase": str(bought.pk), "reason": "Bought by mistake"})

    assert response.status_code == 302
    refund = fake_stripe.created["refund"][-1]  # the POST /v1/refunds the `responses` mock answered
    assert refund["payment_intent"] == bought.payment_intent_id and refund["amount"] == bought.amount_cents
    requested = AuditEvent.objects.get(org=org, action="billing.refund_requested")
    assert requested.data["reason"] == "Bought by mistake" and requested.data["refund"] == refund["id"]
    assert balance(org) == before  # nothing moves until Stripe confirms

    charge = fake_stripe.get(refund["charge"])
    webhooks.send("charge.refunded", charge)

    record = RefundRecord.objects.get(purchase=bought)
    assert record.clawed_micros == bought.credits_micros and balance(org) == before - bought.credits_micros
    assert AuditEvent.objects.filter(org=org, action="billing.refund_clawed_back").exists()


def test_a_refund_without_a_reason_calls_stripe_not(fake_stripe, finance_client, org, bought):
    response = act(finance_client, org, "refund", {"purchase": str(bought.pk), "reason": ""})

    assert response.status_code == 400 and not fake_stripe.created.get("refund")


def test_a_refunded_purchase_is_no_longer_offered(webhooks, fake_stripe, finance_client, org, bought):
    act(finance_client, org, "refund", {"purchase": str(bought.pk), "reason": "Mistake"})
    webhooks.send("charge.refunded", fake_stripe.get(fake_stripe.created["refund"][-1]["charge"]))

    page = finance_client.get(f"/admin/backoffice/customers/{org.pk}/").content.decode()

    assert 'id="action-refund"' not in page


def test_another_orgs_purchase_cannot_be_refunded_from_this_page(webhooks, fake_stripe, finance_client, org, bought,
                                                                 other_org):
    response = act(finance_client, other_org, "refund", {"purchase": str(bought.pk), "reason": "Mistake"})

    assert response.status_code == 400 and not fake_stripe.created.get("refund")


def test_a_trial_extension_is_offered_only_during_a_trial(catalog, finance_client, org):
    page = finance_client.get(f"/admin/backoffice/customers/{org.pk}/").content.decode()
    assert 'id="action-extend-trial"' not in page

    billing_services.trial_start(org=org)
    page = finance_client.get(f"/admin/backoffice/customers/{org.pk}/").content.decode()
    assert 'id="action-extend-trial"' in page
    assert BillingState.objects.get(org=org).trial_ends_at > timezone.now()
