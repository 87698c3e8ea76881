"""The settings pages: auto top-up, alerts, provider keys and members' caps,
validated on the server with the reason next to the field."""

import pytest
from django.test import Client

from billing.models import AutoTopUpSettings, TopUpAttempt
from orgs.models import AuditEvent, Membership
from tests.billing.helpers import C, grant
from usage.models import CreditAccount, MemberSpendLimit, ProviderKey

pytestmark = pytest.mark.django_db


@pytest.fixture
def owner_client(catalog, owner):
    client = Client()
    client.force_login(owner)
    return client


def test_auto_top_up_is_saved_and_shown_with_this_months_spend(owner_client, org, settings):
    settings.BILLING_SIMULATED_PAYMENTS = True
    grant(org, 500)
    response = owner_client.post("/billing/settings/auto-top-up/", {
        "enabled": "on", "threshold": "1,000", "pack": "pack_2000", "monthly_cap": "50"}, follow=True)

    content = response.content.decode()
    assert "Auto top-up is on." in content
    row = AutoTopUpSettings.objects.get(org=org)
    assert (row.enabled, row.threshold_micros, row.pack.code, row.monthly_cap_cents) == (True, 1000 * C, "pack_2000", 5000)
    assert CreditAccount.objects.get(org=org).auto_topup_threshold_micros == 1000 * C


@pytest.mark.parametrize("data, field, message", [
    ({"threshold": "lots", "pack": "pack_500", "monthly_cap": "50"}, "threshold", "Enter a number of credits"),
    ({"threshold": "-5", "pack": "pack_500", "monthly_cap": "50"}, "threshold", "Enter zero or more credits."),
    ({"threshold": "10", "pack": "pack_5000", "monthly_cap": "20"}, "monthly_cap", "Allow at least one pack: $40.00."),
    ({"threshold": "10", "pack": "pack_500", "monthly_cap": "5.555"}, "monthly_cap", "Use at most two decimals."),
    ({"threshold": "10", "pack": "pack_1", "monthly_cap": "50"}, "pack", "Select a valid choice."),
    ({"threshold": "10", "pack": "pack_500", "monthly_cap": "1e999999"}, "monthly_cap", "Enter at most $10,000,000.00."),
    ({"threshold": "10", "pack": "pack_500", "monthly_cap": "99999999999"}, "monthly_cap", "Enter at most $10,000,000.00."),
    ({"threshold": "1e999999", "pack": "pack_500", "monthly_cap": "50"}, "threshold", "the largest amount"),
])
def test_auto_top_up_explains_what_is_wrong(owner_client, org, data, field, message):
    response = owner_client.post("/billing/settings/auto-top-up/", data)

    assert response.status_code == 200
    assert message in response.content.decode()
    assert not AutoTopUpSettings.objects.exists()


def test_the_page_shows_recent_attempts_and_a_pause(owner_client, org):
    from billing import services

    services.auto_topup_configure(org=org, enabled=True, threshold_micros=10 * C, pack_code="pack_500",
                                  monthly_cap_cents=1000)
    AutoTopUpSettings.objects.filter(org=org).update(paused_reason="Your bank asks you to confirm the payment.")
    TopUpAttempt.objects.create(org=org, pack_id=AutoTopUpSettings.objects.get(org=org).pack_id, credits_micros=500 * C,
                                amount_cents=500, idempotency_key="k1", status="action_required",
                                failure_message="Needs 3-D Secure.")

    content = owner_client.get("/billing/settings/auto-top-up/").content.decode()
    assert "Paused:" in content and "Your bank asks you to confirm the payment." in content
    assert "Needs authentication" in content and "Needs 3-D Secure." in content


def test_the_low_balance_line_is_set_and_cleared(owner_client, org):
    grant(org, 10)
    owner_client.post("/billing/settings/alerts/", {"form": "threshold", "threshold": "2,500"})
    assert CreditAccount.objects.get(org=org).low_balance_threshold_micros == 2500 * C
    assert 'data-testid="line">2,500<' in owner_client.get("/billing/settings/alerts/").content.decode()

    owner_client.post("/billing/settings/alerts/", {"form": "threshold", "threshold": ""})
    assert CreditAccount.objects.get(org=org).low_balance_threshold_micros is None

    bad = owner_client.post("/billing/settings/alerts/", {"form": "threshold", "threshold": "0.0000001"})
    assert "more than 6 decimal places" in bad.content.decode()


def test_provider_keys_are_registered_by_label_and_last_four_then_revoked(owner_client, org):
    response = owner_client.post("/billing/settings/provider-keys/", {
        "provider": "anthropic", "label": "Support bot", "last_four": "x9Q2"}, follow=True)
    key = ProviderKey.objects.get(org=org)
    assert (key.provider, key.label, key.last_four) == ("anthropic", "Support bot", "x9Q2")
    assert f"Use its id {key.pk} as provider_key_id" in response.content.decode()

    owner_client.post(f"/billing/settings/provider-keys/{key.pk}/revoke/")
    key.refresh_from_db()
    assert key.revoked_at is not None
    assert "revoked" in owner_client.get("/billing/settings/provider-keys/").content.decode()


WHOLE_KEY = "sk-proj-T0llgateSecretPart1234567890abcdefZq7w"


def test_a_pasted_whole_provider_key_keeps_only_its_last_four(owner_client, org):
    response = owner_client.post("/billing/settings/provider-keys/", {
        "provider": "openai", "label": "Production agents", "last_four": f"  {WHOLE_KEY}\n"}, follow=True)

    key = ProviderKey.objects.get(org=org)
    assert key.last_four == "Zq7w"
    assert "Registered “Production agents” (…Zq7w)" in response.content.decode()
    # nothing more than the last four is kept anywhere: not in the audit trail either
    assert WHOLE_KEY[:-4] not in str(list(AuditEvent.objects.values_list("data", flat=True)))


def test_a_pasted_key_is_never_echoed_back_when_the_form_has_another_error(owner_client, org):
    response = owner_client.post("/billing/settings/provider-keys/", {
        "provider": "openai", "label": "", "last_four": WHOLE_KEY})

    content = response.content.decode()
    assert response.status_code == 200 and "This field is required." in content
    assert WHOLE_KEY[:-4] not in content
    assert 'value="Zq7w"' in content
    assert not ProviderKey.objects.exists()


@pytest.mark.parametrize("typed", ["Zq7", "ab cd", "sk-proj abc Zq7w", "ab\x00cd"])
def test_what_cannot_be_a_key_is_refused_next_to_the_field(owner_client, org, typed):
    response = owner_client.post("/billing/settings/provider-keys/", {
        "provider": "openai", "label": "x", "last_four": typed})

    assert response.status_code == 200
    assert "Type the last four characters of the key, or paste the whole key." in response.content.decode()
    assert not ProviderKey.objects.exists()


def test_members_show_their_spend_this_month_and_owners_set_caps(owner_client, org, owner, member):
    from usage import services

    grant(org, 100)
    services.credits_debit(org=org, amount_micros=12_500_000, idempotency_key="m1", member=member)
    membership = Membership.objects.get(org=org, user=member)

    content = owner_client.get("/billing/members/").content.decode()
    assert f'data-testid="spent-{member.pk}">12.5' in content

    owner_client.post(f"/billing/members/{membership.pk}/limit/", {"limit": "40"})
    assert MemberSpendLimit.objects.get(member=member).monthly_limit_micros == 40 * C
    assert "27.5 left" in owner_client.get("/billing/members/").content.decode()

    bad = owner_client.post(f"/billing/members/{membership.pk}/limit/", {"limit": "forty"}, follow=True)
    assert "Enter a number of credits" in bad.content.decode()
    owner_client.post(f"/billing/members/{membership.pk}/limit/", {"limit": ""})
    assert not MemberSpendLimit.objects.exists()


def test_a_member_cannot_set_caps(catalog, org, owner, member):
    client = Client()
    client.force_login(member)
    target = Membership.objects.get(org=org, user=owner)

    response = client.post(f"/billing/members/{target.pk}/limit/", {"limit": "1"}, follow=True)

    assert not MemberSpendLimit.objects.exists()
    assert "Only admins and owners can set spend limits." in response.content.decode()
