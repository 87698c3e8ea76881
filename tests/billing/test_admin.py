import pytest

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
