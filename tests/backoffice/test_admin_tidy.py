"""The admin, tidied: amounts in credits and money (never micros), read-only
where a service must make the change, no Delete where nothing can be deleted,
the credit account's history is its ledger, and a short list of Stripe models."""

import pytest
from django.urls import reverse

from tests.billing.helpers import C
from tests.factories import UserFactory
from usage import services as usage_services
from usage.models import CreditAccount, GrantSource

pytestmark = pytest.mark.django_db


@pytest.fixture
def superuser_client(client):
    client.force_login(UserFactory(email="root@tollgate.test", is_staff=True, is_superuser=True))
    return client


@pytest.fixture
def account(org):
    usage_services.credits_grant(org=org, amount_micros=13_450 * C, source=GrantSource.PURCHASE)
    return CreditAccount.objects.get(org=org)


def test_the_credit_account_shows_credits_and_money_never_micros(superuser_client, account):
    page = superuser_client.get(reverse("admin:usage_creditaccount_change", args=[account.pk])).content.decode()
    listing = superuser_client.get(reverse("admin:usage_creditaccount_changelist")).content.decode()

    for content in (page, listing):
        assert "13,450 credits ($134.50)" in content
        assert "13450000000" not in content
    assert "Balance micros" not in page


def test_support_reads_the_same_credits_and_money(support_client, account):
    page = support_client.get(reverse("admin:usage_creditaccount_change", args=[account.pk])).content.decode()

    assert "13,450 credits ($134.50)" in page and "13450000000" not in page


def test_grants_and_purchases_lists_show_amounts_not_micros_or_cents(superuser_client, account):
    grants = superuser_client.get(reverse("admin:usage_grant_changelist")).content.decode()

    assert "13,450 credits ($134.50)" in grants and "13450000000" not in grants


def test_the_credit_account_history_is_its_ledger(superuser_client, account):
    response = superuser_client.get(reverse("admin:usage_creditaccount_history", args=[account.pk]))

    assert response.status_code == 302
    assert response["Location"] == reverse("admin:usage_ledgerentry_changelist") + f"?account__id__exact={account.pk}"
    page = superuser_client.get(reverse("admin:usage_creditaccount_change", args=[account.pk])).content.decode()
    assert f"?account__id__exact={account.pk}" in page


def test_an_organizations_settings_are_read_only_and_it_cannot_be_deleted(superuser_client, org, owner):
    page = superuser_client.get(reverse("admin:orgs_organization_change", args=[org.pk])).content.decode()

    assert 'name="is_personal"' not in page and 'name="member_usage"' not in page
    assert 'name="memberships-0-role"' not in page  # roles change through the service
    assert 'name="name"' in page
    assert "deletelink" not in page
    assert superuser_client.post(reverse("admin:orgs_organization_delete", args=[org.pk]), {"post": "yes"}).status_code == 403
    assert superuser_client.get(reverse("admin:orgs_organization_add")).status_code == 403


def test_the_catalog_is_retired_not_deleted(catalog, superuser_client):
    from billing.models import Pack

    pack = Pack.objects.first()
    page = superuser_client.get(reverse("admin:billing_pack_change", args=[pack.pk])).content.decode()

    assert "deletelink" not in page
    assert superuser_client.post(reverse("admin:billing_pack_delete", args=[pack.pk]), {"post": "yes"}).status_code == 403


def test_the_index_lists_a_few_stripe_models_and_one_api_keys_entry(superuser_client):
    index = superuser_client.get("/admin/").content.decode()

    assert "/admin/djstripe/invoice/" in index and "/admin/djstripe/charge/" in index
    assert "/admin/djstripe/bankaccount/" not in index and "/admin/djstripe/applicationfee/" not in index
    assert "/admin/djstripe/apikey/" not in index and "/admin/rest_framework_api_key/" not in index
    assert index.count(">API keys<") == 1


def test_stripe_objects_are_shown_never_added_edited_or_deleted(superuser_client):
    # Tollgate never writes dj-stripe's tables: webhooks and syncs do.
    assert superuser_client.get("/admin/djstripe/invoice/").status_code == 200
    assert superuser_client.get("/admin/djstripe/invoice/add/").status_code == 403
    index = superuser_client.get("/admin/").content.decode()
    assert "/admin/djstripe/charge/add/" not in index and "/admin/djstripe/customer/add/" not in index


def test_tiny_usage_amounts_show_exactly_not_as_zero(superuser_client, account):
    from decimal import Decimal

    from usage.services import UsageInput

    usage_services.usage_record(org=account.org, event=UsageInput(
        idempotency_key="tiny", meter="ai.output_tokens", model="gpt-5-mini", quantity=Decimal(1)))

    listing = superuser_client.get(reverse("admin:usage_usageevent_changelist")).content.decode()

    assert "0.0003 credits ($0.00)" in listing
