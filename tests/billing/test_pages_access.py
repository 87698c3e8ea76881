"""Every billing page for each of the cast: the owner and a billing manager
may act, a member sees the page read-only (and is refused a POST), and
another organization's people never see Acme's data, whatever the URL."""

import pytest
from django.test import Client

from billing import services
from orgs.models import Role
from tests.billing.helpers import C, grant
from tests.factories import MembershipFactory, UserFactory
from usage import services as usage_services
from usage.models import GrantSource, Provider

pytestmark = pytest.mark.django_db

PAGES = [
    "/billing/", "/billing/top-up/", "/billing/plans/", "/billing/usage/", "/billing/invoices/", "/billing/send/",
    "/billing/settings/auto-top-up/", "/billing/settings/alerts/", "/billing/settings/provider-keys/",
    "/billing/members/", "/billing/api-keys/",
]

# What only billing roles see: buttons that buy, change or send.
BUY_MARKERS = ['data-testid="top-up"', 'data-testid="buy-pack_500"', 'data-testid="custom-form"',
               'data-testid="choose-pro"', 'data-testid="auto-topup-form"', 'data-testid="threshold-form"',
               'data-testid="provider-key-form"', 'data-testid="send-form"']


@pytest.fixture
def acme(settings, catalog, org, owner, member):
    settings.BILLING_SIMULATED_PAYMENTS = True  # buttons show only where payments can happen
    grant(org, 1234, GrantSource.PURCHASE, reason="Acme secret grant")
    usage_services.provider_key_create(org=org, provider=Provider.OPENAI, label="acme-prod-key", last_four="AC1E")
    services.auto_topup_configure(org=org, enabled=True, threshold_micros=50 * C, pack_code="pack_2000",
                                  monthly_cap_cents=5000)
    return org


@pytest.fixture
def billing_user(org):
    return MembershipFactory(org=org, role=Role.BILLING, user=UserFactory(email="billing@acme.test")).user


def as_user(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.mark.parametrize("path", PAGES)
def test_owners_and_billing_managers_get_every_page_with_its_controls(acme, owner, billing_user, path):
    for user in (owner, billing_user):
        page = as_user(user).get(path)
        assert page.status_code == 200, (user.email, path)


def test_billing_roles_see_the_buy_buttons(acme, billing_user):
    content = "".join(as_user(billing_user).get(p).content.decode() for p in PAGES)
    for marker in BUY_MARKERS:
        assert marker in content, marker


def test_a_member_sees_every_page_read_only_without_buy_buttons(acme, member):
    client = as_user(member)
    for path in PAGES:
        page = client.get(path)
        assert page.status_code == 200, path
        content = page.content.decode()
        for marker in BUY_MARKERS:
            assert marker not in content, (path, marker)
    assert "Only owners, admins and billing managers of Acme can buy credits" in client.get("/billing/top-up/").content.decode()
    assert "Only owners, admins and billing managers of Acme can change the plan" in client.get("/billing/plans/").content.decode()


@pytest.mark.parametrize("path, data", [
    ("/billing/top-up/", {"credits": "1000"}),
    ("/billing/settings/auto-top-up/", {"enabled": "on", "threshold": "10", "pack": "pack_500", "monthly_cap": "100"}),
    ("/billing/settings/alerts/", {"form": "threshold", "threshold": "5"}),
    ("/billing/settings/provider-keys/", {"provider": "openai", "label": "mine", "last_four": "ZZZZ"}),
    ("/billing/send/", {"recipient": "globex", "amount": "1", "idempotency_key": "0" * 32}),
])
def test_a_members_post_changes_nothing(acme, member, path, data):
    from usage.models import ProviderKey

    response = as_user(member).post(path, data)

    assert response.status_code == 403
    assert ProviderKey.objects.filter(org=acme).count() == 1
    assert acme.auto_topup.threshold_micros == 50 * C
    assert acme.credit_account.low_balance_threshold_micros is None


def test_a_member_may_set_their_own_alerts(acme, member):
    response = as_user(member).post("/billing/settings/alerts/", {"form": "mine", "allowance_80": "on"}, follow=True)

    assert "Your allowance alerts are saved." in response.content.decode()
    pref = services.alert_preference_for(acme, member)
    assert (pref.allowance_80, pref.allowance_95) == (True, False)


def test_plan_changes_and_cancels_need_the_billing_role(acme, member):
    client = as_user(member)
    response = client.post("/billing/plans/change/", {"plan": "pro", "interval": "month"}, follow=True)
    assert "Only" in response.content.decode()
    response = client.post("/billing/plans/cancel/", follow=True)
    assert "Only" in response.content.decode()


@pytest.mark.parametrize("path", PAGES)
def test_an_outsider_sees_only_their_own_organization(acme, outsider, path):
    content = as_user(outsider).get(path).content.decode()

    assert "Acme" not in content and "1,234" not in content and "acme-prod-key" not in content


def test_ids_of_another_org_in_a_url_are_404s(acme, other_org, outsider, owner):
    from usage.models import ProviderKey

    theirs = usage_services.provider_key_create(org=other_org, provider=Provider.OPENAI, label="globex", last_four="GLBX")
    their_member = other_org.memberships.get()
    client = as_user(owner)

    assert client.post(f"/billing/settings/provider-keys/{theirs.pk}/revoke/").status_code == 404
    assert ProviderKey.objects.get(pk=theirs.pk).revoked_at is None
    assert client.post(f"/billing/members/{their_member.pk}/limit/", {"limit": "5"}).status_code == 404
    assert client.get("/billing/invoices/?after=in_someone_elses").status_code == 404
    assert client.get("/billing/checkout/status/?session_id=cs_not_ours").status_code == 404


def test_every_post_needs_the_csrf_token(acme, owner):
    client = Client(enforce_csrf_checks=True)
    client.force_login(owner)
    for path, data in [
        ("/billing/top-up/", {"credits": "1000"}),
        ("/billing/plans/change/", {"plan": "pro"}),
        ("/billing/plans/cancel/", {}),
        ("/billing/settings/auto-top-up/", {"threshold": "1", "pack": "pack_500", "monthly_cap": "100"}),
        ("/billing/settings/alerts/", {"form": "mine"}),
        ("/billing/settings/provider-keys/", {"provider": "openai", "label": "x", "last_four": "ABCD"}),
    ]:
        assert client.post(path, data).status_code == 403, path
