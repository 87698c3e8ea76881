import pytest

from billing.models import Purchase

pytestmark = pytest.mark.django_db

PAGES = ["plan", "pack", "overageprice", "billingstate", "autotopupsettings", "topupattempt", "purchase",
         "refundrecord", "disputerecord", "checkoutstart", "allowanceperiod", "overagereport"]


@pytest.fixture
def staff_client(client, django_user_model):
    staff = django_user_model.objects.create_superuser(email="staff@tollgate.test", password="x" * 12)
    client.force_login(staff)
    return client


@pytest.mark.parametrize("model", PAGES)
def test_staff_see_billing_in_the_admin(catalog, staff_client, org, model):
    from billing import services

    services.trial_start(org=org)
    assert staff_client.get(f"/admin/billing/{model}/").status_code == 200


def test_the_plan_page_edits_prices_inline(catalog, staff_client):
    from billing.models import Plan

    page = staff_client.get(f"/admin/billing/plan/{Plan.objects.get(code='pro').pk}/change/")

    assert page.status_code == 200 and "tollgate_pro_year" in page.content.decode()


def test_staff_can_refund_a_purchase_through_stripe(webhooks, fake_stripe, staff_client, org, owner):
    from tests.billing.helpers import paid_session, start_pack_checkout

    start = start_pack_checkout(org, owner, "pack_500")
    webhooks.send("checkout.session.completed", paid_session(fake_stripe, start))
    purchase = Purchase.objects.get()

    staff_client.post("/admin/billing/purchase/", {"action": "refund_in_full", "_selected_action": [purchase.pk]})

    refund = fake_stripe.created["refund"][-1]
    assert refund["payment_intent"] == purchase.payment_intent_id and refund["amount"] == 500
