"""Promotions: Checkout takes Stripe promotion codes (STRIPE_ALLOW_PROMOTION_CODES),
a discount lowers the price and never the credits, and what was actually paid
is what the purchase, the ledger, the receipt, the pages and the admin show;
staff grant promotional credits with an expiry and a reason from the admin."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core import mail
from django.test import Client
from django.utils import timezone

from billing import services
from billing.models import AllowancePeriod, Purchase
from billing_project.errors import InvalidRequest
from orgs.models import AuditEvent
from tests.billing import stripe_builders as b
from tests.billing.helpers import C, balance, invoice_for, paid_session, plan_price, start_pack_checkout, subscription_for
from usage import services as usage_services
from usage.models import Grant, GrantSource, LedgerEntry

pytestmark = pytest.mark.django_db


def logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def fall20(fake_stripe) -> dict:
    """A 20% coupon and its customer-facing code FALL20, as made in the Stripe dashboard."""
    coupon = fake_stripe.put(b.coupon(percent_off=20.0, name="20% off"))
    return fake_stripe.put(b.promotion_code(coupon_id=coupon["id"], code="FALL20"))


def discounted(promo: dict, *, subtotal: int, discount: int, tax: int = 0, payment_status: str = "paid") -> dict:
    """A session's fields once the buyer entered `promo` (ids, as Stripe sends them unexpanded)."""
    return {
        "amount_subtotal": subtotal, "amount_total": subtotal - discount + tax, "payment_status": payment_status,
        "total_details": {"amount_discount": discount, "amount_shipping": 0, "amount_tax": tax},
        "discounts": [{"coupon": promo["promotion"]["coupon"], "promotion_code": promo["id"]}],
    }


# --- the Checkout Session ------------------------------------------------------------


def test_plan_and_pack_checkouts_take_promotion_codes_by_default(stripe_account, fake_stripe, org, owner):
    services.checkout_start(org=org, kind="pack", code="pack_2000", actor=owner)
    services.checkout_start(org=org, kind="plan", code="pro", actor=owner)

    pack_params, plan_params = fake_stripe.created["checkout.session.params"][-2:]
    assert (pack_params["mode"], pack_params["allow_promotion_codes"]) == ("payment", "true")
    assert (plan_params["mode"], plan_params["allow_promotion_codes"]) == ("subscription", "true")


def test_with_the_setting_off_no_checkout_offers_promotion_codes(settings, stripe_account, fake_stripe, org, owner):
    settings.STRIPE_ALLOW_PROMOTION_CODES = False

    services.checkout_start(org=org, kind="pack", code="pack_2000", actor=owner)
    services.checkout_start(org=org, kind="plan", code="pro", actor=owner)

    params = fake_stripe.created["checkout.session.params"][-2:]
    assert [p["mode"] for p in params] == ["payment", "subscription"]
    assert all("allow_promotion_codes" not in p for p in params)


def test_a_custom_amount_is_sold_at_the_list_price_without_promotion_codes(stripe_account, fake_stripe, org, owner):
    services.checkout_start(org=org, kind="credits", credits_micros=1500 * C, actor=owner)

    assert "allow_promotion_codes" not in fake_stripe.created["checkout.session.params"][-1]


# --- a discounted pack ---------------------------------------------------------------


def test_a_discounted_pack_grants_all_its_credits_and_records_what_was_paid(webhooks, fake_stripe, fall20, org, owner):
    start = start_pack_checkout(org, owner, "pack_2000")  # 2,000 credits at $18.00
    before = balance(org)
    mail.outbox.clear()
    session = paid_session(fake_stripe, start, **discounted(fall20, subtotal=1800, discount=360, tax=144))

    webhooks.send("checkout.session.completed", session)

    assert balance(org) - before == 2000 * C  # the promotion discounts the price, not the credits
    purchase = Purchase.objects.get(org=org)
    assert (purchase.credits_micros, purchase.amount_cents, purchase.discount_cents, purchase.list_amount_cents,
            purchase.total_cents, purchase.promotion_code) == (2000 * C, 1440, 360, 1800, 1584, "FALL20")

    entry = LedgerEntry.objects.get(grant=purchase.grant, kind="grant")
    assert entry.amount_micros == 2000 * C
    assert entry.reason == "Bought 2,000 credits for $14.40 ($3.60 off with FALL20)"
    audit = AuditEvent.objects.get(org=org, action="billing.pack_purchased")
    assert (audit.data["amount_cents"], audit.data["discount_cents"], audit.data["promotion_code"]) == (1440, 360, "FALL20")

    [receipt] = [m for m in mail.outbox if "receipt for 2,000 credits" in m.subject]
    assert "2,000 credits for $14.40 ($18.00 less $3.60 with promotion code FALL20)" in receipt.body

    invoices = logged_in(owner).get("/billing/invoices/").content.decode()
    assert "$14.40" in invoices and "$3.60 off with FALL20" in invoices and "<s>$18.00</s>" in invoices

    # a replay grants nothing more and records nothing twice
    webhooks.send("checkout.session.completed", session)
    assert balance(org) - before == 2000 * C and Purchase.objects.count() == 1


def test_the_admin_shows_staff_the_amount_paid_and_the_promotion(webhooks, fake_stripe, fall20, org, owner,
                                                                 staff_client):
    start = start_pack_checkout(org, owner, "pack_2000")
    webhooks.send("checkout.session.completed",
                  paid_session(fake_stripe, start, **discounted(fall20, subtotal=1800, discount=360)))

    page = staff_client.get("/admin/billing/purchase/").content.decode()

    assert "FALL20" in page and "$14.40" in page and "$3.60" in page  # money, never raw cents


def test_a_promotion_that_takes_the_whole_price_off_still_buys_the_pack(webhooks, fake_stripe, org, owner):
    coupon = fake_stripe.put(b.coupon(percent_off=100.0, name="On the house"))
    free = fake_stripe.put(b.promotion_code(coupon_id=coupon["id"], code="ONTHEHOUSE"))
    start = start_pack_checkout(org, owner, "pack_500")
    before = balance(org)
    # Nothing to pay: Stripe completes the session without a payment intent.
    session = fake_stripe.put({**fake_stripe.get(start.session_id), "status": "complete",
                               **discounted(free, subtotal=500, discount=500, payment_status="no_payment_required")})

    webhooks.send("checkout.session.completed", session)

    assert balance(org) - before == 500 * C
    purchase = Purchase.objects.get(org=org)
    assert (purchase.amount_cents, purchase.discount_cents, purchase.promotion_code, purchase.payment_intent_id) == (
        0, 500, "ONTHEHOUSE", None)


def test_a_pack_without_a_promotion_reads_as_before(webhooks, fake_stripe, org, owner):
    start = start_pack_checkout(org, owner, "pack_500")

    webhooks.send("checkout.session.completed", paid_session(fake_stripe, start))

    purchase = Purchase.objects.get(org=org)
    assert (purchase.amount_cents, purchase.discount_cents, purchase.promotion_code) == (500, 0, "")
    assert LedgerEntry.objects.get(grant=purchase.grant, kind="grant").reason == "Bought 500 credits"


def test_an_unreadable_promotion_code_is_recorded_by_its_id(webhooks, fake_stripe, org, owner):
    start = start_pack_checkout(org, owner, "pack_500")
    gone = {"id": "promo_deleted1", "promotion": {"coupon": "co_gone"}}  # Stripe answers 404 for it

    webhooks.send("checkout.session.completed",
                  paid_session(fake_stripe, start, **discounted(gone, subtotal=500, discount=100)))

    purchase = Purchase.objects.get(org=org)
    assert (purchase.amount_cents, purchase.discount_cents, purchase.promotion_code) == (400, 100, "promo_deleted1")


# --- a discounted subscription invoice ----------------------------------------------------


def test_a_discounted_subscription_invoice_grants_the_full_allowance_and_shows_what_was_paid(
    webhooks, fake_stripe, fall20, org, owner,
):
    sub = subscription_for(fake_stripe, org, "pro")  # $99.00 a month, 10,000 credits
    webhooks.send("customer.subscription.created", sub)
    discount = b.discount(coupon_id=fall20["promotion"]["coupon"], promotion_code_id=fall20["id"],
                          customer=sub["customer"], subscription=sub["id"])
    invoice = invoice_for(fake_stripe, sub, total=7920, amount_due=7920, amount_paid=7920, total_excluding_tax=7920,
                          discounts=[discount], total_discount_amounts=[{"amount": 1980, "discount": discount["id"]}])

    webhooks.send("invoice.paid", invoice)

    period = AllowancePeriod.objects.get(org=org, invoice_id=invoice["id"])
    assert period.grant.amount_micros == plan_price("pro").allowance_micros == 10_000 * C
    assert (period.amount_paid_cents, period.discount_cents, period.promotion_code) == (7920, 1980, "FALL20")

    content = logged_in(owner).get("/billing/invoices/").content.decode()
    assert "$99.00" in content and "less $19.80 promotion" in content and "$79.20" in content

    from rest_framework.test import APIClient

    from accounts.models import Scope
    from tests.factories import api_key_for

    _key, secret = api_key_for(org, scopes=(Scope.READ,))
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    [row] = api.get("/api/v1/invoices").json()["data"]
    assert (row["subtotal_cents"], row["discount_cents"], row["total_cents"], row["amount_paid_cents"]) == (
        9900, 1980, 7920, 7920)


# --- staff grant promotional credits --------------------------------------------------------


@pytest.fixture
def staff_client(client, django_user_model):
    staff = django_user_model.objects.create_superuser(email="staff@tollgate.test", password="x" * 12)
    client.force_login(staff)
    client.staff = staff
    return client


def grant_url(org) -> str:
    return f"/admin/billing/billingstate/{services.billing_state_for(org).pk}/grant-promo/"


def form(**fields) -> dict:
    return {"credits": "250", "expires_at": (timezone.now() + timedelta(days=30)).strftime("%Y-%m-%d %H:%M:%S"),
            "reason": "Speaker at our conference", "token": "t0k3n", **fields}


def test_staff_grant_promotional_credits_that_expire_with_an_audit_row(staff_client, org):
    before = balance(org)
    page = staff_client.get(grant_url(org))
    assert page.status_code == 200 and 'name="token"' in page.content.decode()
    assert "Grant promotional credits" in staff_client.get(
        f"/admin/billing/billingstate/{services.billing_state_for(org).pk}/change/").content.decode()
    expires = (timezone.now() + timedelta(days=30)).replace(second=0, microsecond=0)

    response = staff_client.post(grant_url(org), form(expires_at=expires.strftime("%Y-%m-%d %H:%M")))

    assert response.status_code == 302
    grant = Grant.objects.get(account__org=org, source=GrantSource.PROMO)
    assert (grant.amount_micros, grant.expires_at) == (250 * C, expires)
    assert balance(org) - before == 250 * C
    entry = LedgerEntry.objects.get(grant=grant, kind="grant")
    assert (entry.reason, entry.staff_user) == ("Promotion: Speaker at our conference", staff_client.staff)
    audit = AuditEvent.objects.get(org=org, action="billing.promo_granted")
    assert audit.actor_user == staff_client.staff and audit.actor_label == "staff@tollgate.test"
    assert audit.data["credits"] == "250" and audit.data["reason"] == "Speaker at our conference"
    assert audit.data["expires_at"] == expires.isoformat()
    assert AuditEvent.objects.filter(org=org, action="credits.granted", actor_user=staff_client.staff).exists()

    # The same form sent again (a double click) grants once.
    staff_client.post(grant_url(org), form(expires_at=expires.strftime("%Y-%m-%d %H:%M")))
    assert Grant.objects.filter(account__org=org, source=GrantSource.PROMO).count() == 1
    assert AuditEvent.objects.filter(org=org, action="billing.promo_granted").count() == 1

    # The expiry is honoured: unspent promotional credits go when it passes.
    usage_services.grants_expire(now=expires + timedelta(seconds=1))
    grant.refresh_from_db()
    assert grant.remaining_micros == 0
    assert balance(org) == before


@pytest.mark.parametrize(("fields", "message"), [
    ({"credits": "0"}, "Grant more than zero credits."),
    ({"credits": "-5"}, "Grant more than zero credits."),
    ({"credits": "lots"}, ""),
    ({"expires_at": (timezone.now() - timedelta(days=1)).strftime("%Y-%m-%d %H:%M")}, "The expiry must be in the future."),
    ({"expires_at": ""}, "This field is required."),
    ({"reason": "   "}, "This field is required."),
    ({"reason": ""}, "This field is required."),
])
def test_bad_input_is_refused_with_a_message_and_grants_nothing(staff_client, org, fields, message):
    response = staff_client.post(grant_url(org), form(**fields))

    assert response.status_code == 400
    assert 'class="errorlist' in response.content.decode()
    if message:
        assert message in response.content.decode()
    assert not Grant.objects.filter(account__org=org, source=GrantSource.PROMO).exists()
    assert not AuditEvent.objects.filter(org=org, action="billing.promo_granted").exists()


def test_staff_without_ledger_rights_may_not_grant(client, django_user_model, org):
    clerk = django_user_model.objects.create_user(email="clerk@tollgate.test", password="x" * 12, is_staff=True)
    client.force_login(clerk)

    assert client.post(grant_url(org), form()).status_code == 403
    assert not Grant.objects.filter(account__org=org, source=GrantSource.PROMO).exists()


@pytest.mark.parametrize(("kwargs", "code"), [
    ({"credits_micros": 0}, "invalid_amount"),
    ({"credits_micros": -C}, "invalid_amount"),
    ({"expires_at": None}, "invalid_expiry"),
    ({"expires_at": timezone.now() - timedelta(minutes=1)}, "invalid_expiry"),
    ({"reason": " \n"}, "reason_required"),
])
def test_the_service_refuses_bad_input_with_a_code(org, django_user_model, kwargs, code):
    staff = django_user_model.objects.create_superuser(email="staff@tollgate.test", password="x" * 12)
    args = {"org": org, "credits_micros": 10 * C, "expires_at": timezone.now() + timedelta(days=1),
            "reason": "Beta tester", "staff_user": staff, **kwargs}

    with pytest.raises(InvalidRequest) as refused:
        services.promo_credits_grant(**args)

    assert refused.value.code == code and refused.value.status == 400
    assert not Grant.objects.filter(account__org=org, source=GrantSource.PROMO).exists()


@pytest.mark.django_db(transaction=True)
def test_a_form_sent_twice_at_the_same_moment_grants_once(django_user_model):
    import threading

    from django.db import connection

    from tests.factories import OrganizationFactory

    org = OrganizationFactory()
    staff = django_user_model.objects.create_superuser(email="staff@tollgate.test", password="x" * 12)
    expires = timezone.now() + timedelta(days=7)
    barrier, results = threading.Barrier(6), []

    def send() -> None:
        try:
            barrier.wait()
            results.append(services.promo_credits_grant(org=org, credits_micros=100 * C, expires_at=expires,
                                                        reason="Launch week", staff_user=staff,
                                                        idempotency_key="same-form"))
        except Exception as error:  # noqa: BLE001 - the test inspects it
            results.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=send) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert len(results) == 6 and all(isinstance(r, LedgerEntry) for r in results), results
    assert len({r.pk for r in results}) == 1
    assert Grant.objects.filter(account__org=org, source=GrantSource.PROMO).count() == 1
    assert balance(org) == 100 * C + sum(
        g.remaining_micros for g in Grant.objects.filter(account__org=org).exclude(source=GrantSource.PROMO))
    assert AuditEvent.objects.filter(org=org, action="billing.promo_granted").count() == 1
