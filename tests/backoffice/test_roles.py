"""Staff roles: Support reads everything, Finance may also act on a customer."""

import pytest
from django.contrib.auth.models import Group

from orgs.models import AuditEvent

pytestmark = pytest.mark.django_db

ACTION_POSTS = {
    "adjust": {"adjust-credits": "25", "adjust-reason": "Goodwill", "adjust-token": "t1"},
    "promo": {"promo-credits": "100", "promo-expires_at": "2099-01-01 00:00", "promo-reason": "Launch", "promo-token": "t2"},
    "extend-trial": {"extend-trial-days": "7", "extend-trial-reason": "Asked nicely"},
    "pause": {"pause-reason": "Fraud check"},
    "resume": {"resume-reason": "Cleared"},
    "refund": {"refund-purchase": "1", "refund-reason": "Asked"},
    "resend-invoice": {"resend-invoice-invoice": "in_1", "resend-invoice-reason": "Lost it"},
}


def test_the_migration_makes_support_and_finance(roles):
    support = {f"{p.content_type.app_label}.{p.codename}" for p in Group.objects.get(name="Support").permissions.all()}
    finance = {f"{p.content_type.app_label}.{p.codename}" for p in Group.objects.get(name="Finance").permissions.all()}

    assert {"backoffice.view_customers", "usage.view_ledgerentry", "billing.view_purchase", "orgs.view_auditevent",
            "djstripe.view_event"} <= support
    assert not any(p.split(".")[1].startswith(("add_", "change_", "delete_")) for p in support)
    assert not support & {"backoffice.adjust_credits", "backoffice.refund_purchase", "backoffice.grant_promo"}
    assert support < finance
    assert {"backoffice.adjust_credits", "backoffice.grant_promo", "backoffice.refund_purchase",
            "backoffice.extend_trial", "backoffice.pause_usage", "backoffice.resend_invoice"} <= finance


def test_the_migration_run_twice_adds_nothing(roles):
    from tests.backoffice.conftest import roles_create

    before = Group.objects.get(name="Finance").permissions.count()
    roles_create()
    assert Group.objects.count() == 2 and Group.objects.get(name="Finance").permissions.count() == before


@pytest.mark.parametrize("action", sorted(ACTION_POSTS))
def test_support_cannot_post_an_action(support_client, org, action):
    response = support_client.post(f"/admin/backoffice/customers/{org.pk}/{action}/", ACTION_POSTS[action])

    assert response.status_code == 403
    assert not AuditEvent.objects.filter(org=org).exists()


def test_support_reads_the_customer_page_and_the_admin_lists(support_client, org):
    assert support_client.get(f"/admin/backoffice/customers/{org.pk}/").status_code == 200
    assert support_client.get("/admin/backoffice/customers/?q=acme").status_code == 200
    for url in ["/admin/usage/ledgerentry/", "/admin/billing/purchase/", "/admin/orgs/auditevent/",
                "/admin/orgs/organization/", "/admin/usage/creditaccount/"]:
        assert support_client.get(url).status_code == 200, url


def test_support_sees_no_action_buttons(support_client, org):
    page = support_client.get(f"/admin/backoffice/customers/{org.pk}/").content.decode()

    assert "Your role may not do this" in page
    assert 'type="submit" value="Adjust credits"' not in page


def test_finance_sees_the_action_forms(finance_client, org):
    page = finance_client.get(f"/admin/backoffice/customers/{org.pk}/").content.decode()

    assert 'value="Adjust credits"' in page and 'value="Grant promotional credits"' in page


def test_a_staff_member_without_a_role_cannot_open_customer_pages(client, org):
    from tests.backoffice.conftest import staff_in

    client.force_login(staff_in(None, "nobody@tollgate.test"))

    assert client.get(f"/admin/backoffice/customers/{org.pk}/").status_code == 403
    assert client.post(f"/admin/backoffice/customers/{org.pk}/pause/", ACTION_POSTS["pause"]).status_code == 403


def test_people_who_are_not_staff_are_sent_to_the_admin_login(client, owner, org):
    client.force_login(owner)

    response = client.get(f"/admin/backoffice/customers/{org.pk}/")

    assert response.status_code == 302 and "/admin/login/" in response["Location"]
