"""Finding a customer by a member's e-mail, the slug, the name or the Stripe customer id."""

import pytest

from billing.models import BillingState

pytestmark = pytest.mark.django_db


def found(client, query: str) -> str:
    response = client.get("/admin/backoffice/customers/", {"q": query})
    assert response.status_code == 200
    return response.content.decode()


@pytest.mark.parametrize("query", ["member@acme.test", "OWNER@ACME", "acme", "Acm"])
def test_it_finds_by_email_slug_or_name(support_client, org, owner, member, other_org, query):
    content = found(support_client, query)

    assert f"/admin/backoffice/customers/{org.pk}/" in content
    assert f"/admin/backoffice/customers/{other_org.pk}/" not in content


def test_it_finds_by_stripe_customer_id(support_client, customer, other_org):
    customer_id = BillingState.objects.get(org=customer["org"]).customer_id

    content = found(support_client, customer_id)

    assert customer_id.startswith("cus_")
    assert f"/admin/backoffice/customers/{customer['org'].pk}/" in content


def test_an_org_with_many_matching_members_is_listed_once(support_client, org, owner, member):
    assert found(support_client, "acme.test").count(f"/admin/backoffice/customers/{org.pk}/") == 1


def test_nothing_found_says_so(support_client, org):
    assert "No organization matches" in found(support_client, "nobody-here")


def test_the_admin_front_page_has_the_search_box(support_client):
    content = support_client.get("/admin/").content.decode()

    assert 'id="customer-search"' in content and "/admin/backoffice/customers/" in content
