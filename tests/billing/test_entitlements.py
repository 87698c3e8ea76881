"""Feature access by plan: GET /api/v1/entitlements, POST /api/v1/entitlements/check,
the member and API key caps plans carry (where people meet them: inviting,
joining, making a key), downgrades taking effect at once for new work, and the
Plans page saying what each feature unlocks."""

from datetime import timedelta
from decimal import Decimal

import pytest
import time_machine
from django.core.management import CommandError, call_command
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from accounts import services as account_services
from accounts.models import OrgAPIKey
from billing import selectors, services
from billing.models import BillingState, BillingStatus, Plan
from billing.services.plans import plan_apply
from orgs import services as org_services
from orgs.entitlements import FeatureNotInPlan, PlanLimitReached
from orgs.models import Invitation, Membership
from tests.billing.helpers import invoice_for, subscription_for
from tests.factories import MembershipFactory, UserFactory, api_key_for
from usage import services as usage_services
from usage.models import CreditAccount, GrantSource, UsageEvent

pytestmark = pytest.mark.django_db

C = 1_000_000


@pytest.fixture
def client_api(org, catalog):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key_for(org, scopes=['read'])[1]}")
    return client


def on_plan(org, code):
    state = services.billing_state_for(org)
    state = BillingState.objects.get(pk=state.pk)
    plan_apply(state, code, "test")
    state.status = BillingStatus.FREE if code == "free" else BillingStatus.ACTIVE
    state.save()


def error(response, status, code):
    assert response.status_code == status, response.content
    body = response.json()["error"]
    assert body["code"] == code, body
    return body


# --- GET /entitlements -------------------------------------------------------------


def test_entitlements_list_the_plan_its_features_and_each_limit_with_its_use(org, owner, member, client_api):
    on_plan(org, "starter")
    usage_services.credits_grant(org=org, amount_micros=120 * C, source=GrantSource.PURCHASE)
    usage_services.hold_create(org=org, amount_micros=20 * C)
    org_services.invitation_create(org=org, actor=owner, email="new@acme.test")

    body = client_api.get("/api/v1/entitlements").json()

    assert (body["plan"], body["plan_name"], body["status"]) == ("starter", "Starter", "active")
    assert body["features"] == ["basic_workflows", "advanced_workflows", "api_access"]
    credits = body["limits"]["credits"]
    # 120 bought, 50 of Free's allowance (billing starts an org on Free), 20 held
    assert (credits["balance"], credits["held"], credits["available"], credits["overage_allowed"]) == (
        "170", "20", "150", False)
    assert body["limits"]["members"] == {"limit": 5, "used": 2, "pending_invitations": 1, "remaining": 2}
    assert body["limits"]["api_keys"] == {"limit": 5, "used": 1, "remaining": 4}  # the key asking
    assert {m["meter"]: m["allowed"] for m in body["meters"]} == {
        "image.generated": False, "tts.characters": False, "video.seconds": False}
    assert {m["required_feature"] for m in body["meters"]} == {"media_generation"}


def test_max_carries_no_caps_and_allows_every_gated_meter(org, client_api):
    on_plan(org, "max")

    body = client_api.get("/api/v1/entitlements").json()

    assert body["limits"]["members"]["limit"] is None and body["limits"]["members"]["remaining"] is None
    assert body["limits"]["api_keys"] == {"limit": None, "used": 1, "remaining": None}
    assert all(m["allowed"] for m in body["meters"])


def test_the_allowance_in_force_and_its_use_are_listed(org, client_api):
    services.billing_state_for(org)  # starts Free, with its allowance
    usage_services.credits_debit(org=org, amount_micros=5 * C, idempotency_key="spent", reason="test")

    credits = client_api.get("/api/v1/entitlements").json()["limits"]["credits"]

    assert (credits["allowance"], credits["allowance_used"]) == ("50", "5")
    assert credits["allowance_period_end"]


def test_the_selector_is_what_the_api_answers(org, catalog):
    on_plan(org, "pro")
    ent = selectors.entitlements(org)
    assert ent.plan_name == "Pro" and "media_generation" in ent.features
    assert ent.limit("members").limit == 25 and ent.limit("api_keys").used == 0


# --- POST /entitlements/check --------------------------------------------------------


def test_a_feature_in_the_plan_is_allowed(org, client_api):
    on_plan(org, "pro")
    response = client_api.post("/api/v1/entitlements/check", {"feature": "media_generation"}, format="json")
    assert response.status_code == 200
    assert response.json() == {"allowed": True, "feature": "media_generation", "plan": "pro"}


def test_a_feature_not_in_the_plan_is_403_with_the_cheapest_plan_that_has_it(org, client_api):
    on_plan(org, "starter")

    body = error(client_api.post("/api/v1/entitlements/check", {"feature": "media_generation"}, format="json"),
                 403, "feature_not_in_plan")

    assert body["type"] == "permission_denied"
    assert (body["required_feature"], body["plan"], body["upgrade_plan"], body["upgrade_plan_name"]) == (
        "media_generation", "starter", "pro", "Pro")
    assert body["upgrade_url"] == "http://testserver/billing/plans/#plan-pro"
    assert "Upgrade to Pro" in body["message"]
    # priority processing only comes with Max
    body = error(client_api.post("/api/v1/entitlements/check", {"feature": "priority_processing"}, format="json"),
                 403, "feature_not_in_plan")
    assert body["upgrade_plan"] == "max"


def test_the_cheapest_plan_is_chosen_by_price_not_by_catalog_order(org, client_api):
    Plan.objects.filter(code="max").update(sort_order=0)
    Plan.objects.filter(code="free").update(sort_order=3)
    body = error(client_api.post("/api/v1/entitlements/check", {"feature": "media_generation"}, format="json"),
                 403, "feature_not_in_plan")
    assert body["upgrade_plan"] == "pro"


def test_an_org_without_billing_state_is_on_free(org, client_api):
    error(client_api.post("/api/v1/entitlements/check", {"feature": "api_access"}, format="json"),
          403, "feature_not_in_plan")
    assert client_api.post("/api/v1/entitlements/check", {"feature": "basic_workflows"},
                           format="json").status_code == 200


def test_an_unknown_feature_is_400(client_api):
    body = error(client_api.post("/api/v1/entitlements/check", {"feature": "teleportation"}, format="json"),
                 400, "unknown_feature")
    assert "media_generation" in body["message"]
    error(client_api.post("/api/v1/entitlements/check", {}, format="json"), 400, "invalid_request")


def test_entitlements_need_a_key(catalog):
    assert APIClient().get("/api/v1/entitlements").status_code == 401
    assert APIClient().post("/api/v1/entitlements/check", {"feature": "x"}, format="json").status_code == 401


# --- members per organization ---------------------------------------------------------


def invite(org, owner, n):
    for i in range(n):
        org_services.invitation_create(org=org, actor=owner, email=f"person{i}@acme.test")


def test_free_allows_three_members_counting_open_invitations(org, owner, catalog):
    on_plan(org, "free")
    invite(org, owner, 2)  # the owner and two invitations: three seats

    with pytest.raises(PlanLimitReached) as refused:
        org_services.invitation_create(org=org, actor=owner, email="fourth@acme.test")

    error = refused.value
    assert (error.status, error.code) == (403, "plan_limit_reached")
    assert (error.details["resource"], error.details["limit"], error.details["count"]) == ("members", 3, 3)
    assert (error.details["upgrade_plan"], error.details["upgrade_plan_name"]) == ("starter", "Starter")
    assert error.details["upgrade_url"].endswith("/billing/plans/#plan-starter")
    assert "Free allows 3 members per organization" in error.message
    assert not Invitation.objects.filter(email="fourth@acme.test").exists()


def test_a_revoked_invitation_frees_its_seat(org, owner, catalog):
    on_plan(org, "free")
    invite(org, owner, 2)
    org_services.invitation_revoke(org=org, actor=owner, invitation=Invitation.objects.get(email="person0@acme.test"))

    org_services.invitation_create(org=org, actor=owner, email="third@acme.test")


def test_reinviting_the_same_address_takes_no_extra_seat(org, owner, catalog):
    on_plan(org, "free")
    invite(org, owner, 2)
    org_services.invitation_create(org=org, actor=owner, email="person1@acme.test")  # a fresh link


def test_an_upgrade_allows_more_at_once(org, owner, catalog):
    on_plan(org, "free")
    invite(org, owner, 2)
    on_plan(org, "starter")
    org_services.invitation_create(org=org, actor=owner, email="fourth@acme.test")


def test_a_downgrade_keeps_who_is_in_and_refuses_only_more(org, owner, catalog):
    on_plan(org, "starter")
    for i in range(3):
        MembershipFactory(org=org, user=UserFactory(email=f"m{i}@acme.test"))
    _inv, token = org_services.invitation_create(org=org, actor=owner, email="late@acme.test")  # the fifth seat
    on_plan(org, "free")  # e.g. grace ended

    assert Membership.objects.filter(org=org).count() == 4  # nobody is removed
    with pytest.raises(PlanLimitReached):
        org_services.invitation_create(org=org, actor=owner, email="more@acme.test")
    late = UserFactory(email="late@acme.test")
    with pytest.raises(PlanLimitReached):
        org_services.invitation_accept(token=token, user=late)
    assert not Membership.objects.filter(user=late).exists()


def test_an_invitation_sent_within_the_cap_is_accepted(org, owner, catalog):
    on_plan(org, "free")
    _inv, token = org_services.invitation_create(org=org, actor=owner, email="ok@acme.test")
    assert org_services.invitation_accept(token=token, user=UserFactory(email="ok@acme.test")).role == "member"


def test_the_members_page_shows_the_refusal_with_a_link_to_the_plan(org, owner, catalog):
    on_plan(org, "free")
    invite(org, owner, 2)
    client = Client()
    client.force_login(owner)

    response = client.post("/billing/members/", {"email": "fourth@acme.test", "role": "member"})

    content = response.content.decode()
    assert response.status_code == 200
    assert "Free allows 3 members per organization" in content
    assert 'data-testid="upgrade-link"' in content and 'href="/billing/plans/#plan-starter"' in content


def test_the_invitation_page_shows_the_refusal_with_a_link(org, owner, catalog):
    on_plan(org, "free")
    for i in range(2):
        MembershipFactory(org=org, user=UserFactory(email=f"m{i}@acme.test"))
    Invitation.objects.all().delete()
    on_plan(org, "starter")
    _inv, token = org_services.invitation_create(org=org, actor=owner, email="late@acme.test")
    MembershipFactory(org=org, user=UserFactory(email="m2@acme.test"))  # the org fills up meanwhile
    on_plan(org, "free")
    client = Client()
    client.force_login(UserFactory(email="late@acme.test"))

    response = client.post(reverse("orgs:invitation", args=[token]))

    assert response.status_code == 403
    assert 'href="/billing/plans/#plan-starter"' in response.content.decode()


# --- API keys per organization ------------------------------------------------------------


def test_free_allows_two_active_api_keys(org, owner, catalog):
    on_plan(org, "free")
    account_services.api_key_create(org=org, name="one", actor=owner)
    second, _secret = account_services.api_key_create(org=org, name="two", actor=owner)

    with pytest.raises(PlanLimitReached) as refused:
        account_services.api_key_create(org=org, name="three", actor=owner)
    assert (refused.value.details["resource"], refused.value.details["limit"]) == ("api_keys", 2)
    assert refused.value.details["upgrade_plan"] == "starter"
    assert OrgAPIKey.objects.filter(org=org).count() == 2

    account_services.api_key_revoke(org=org, key=second, actor=owner)  # a revoked key frees its place
    account_services.api_key_create(org=org, name="three", actor=owner)


def test_an_expired_key_does_not_count(org, owner, catalog):
    on_plan(org, "free")
    account_services.api_key_create(org=org, name="one", actor=owner)
    old, _ = account_services.api_key_create(org=org, name="old", actor=owner)
    OrgAPIKey.objects.filter(pk=old.pk).update(expiry_date=timezone.now())
    account_services.api_key_create(org=org, name="new", actor=owner)


def test_keys_already_made_keep_working_after_a_downgrade(org, owner, catalog):
    on_plan(org, "pro")
    secrets = [account_services.api_key_create(org=org, name=f"k{i}", actor=owner)[1] for i in range(3)]
    on_plan(org, "free")

    with pytest.raises(PlanLimitReached):
        account_services.api_key_create(org=org, name="more", actor=owner)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secrets[2]}")
    assert client.get("/api/v1/balance").status_code == 200


def test_the_keys_page_shows_the_refusal_with_a_link(org, owner, catalog):
    on_plan(org, "free")
    for i in range(2):
        api_key_for(org, name=f"k{i}")
    client = Client()
    client.force_login(owner)

    response = client.post(reverse("keys:list"), {"name": "third", "scopes": ["read"]})

    content = response.content.decode()
    assert "Free allows 2 API keys per organization" in content
    assert 'href="/billing/plans/#plan-starter"' in content
    assert OrgAPIKey.objects.filter(org=org).count() == 2


def test_the_create_api_key_command_says_why(org, catalog):
    on_plan(org, "free")
    for i in range(2):
        api_key_for(org, name=f"k{i}")
    with pytest.raises(CommandError, match="Free allows 2 API keys"):
        call_command("create_api_key", "--org", org.slug)


# --- features written down to the ledger --------------------------------------------------


def test_when_grace_ends_the_downgrade_to_free_refuses_gated_usage_and_more_keys_at_once(
        webhooks, fake_stripe, org, owner):
    with time_machine.travel(timezone.now(), tick=False) as clock:
        sub = subscription_for(fake_stripe, org, "pro")
        webhooks.send("customer.subscription.created", sub)
        webhooks.send("invoice.paid", invoice_for(fake_stripe, sub))
        image = usage_services.UsageInput(idempotency_key="before", meter="image.generated", model="gpt-image-1",
                                          quantity=Decimal(1))
        kept = usage_services.usage_record(org=org, event=image).event
        keys = [account_services.api_key_create(org=org, name=f"k{i}", actor=owner)[0] for i in range(3)]
        sub["status"] = "past_due"
        webhooks.send("invoice.payment_failed", invoice_for(fake_stripe, sub, status="open"))

        clock.move_to(BillingState.objects.get(org=org).grace_ends_at + timedelta(minutes=1))
        assert services.grace_periods_end() == 1

    assert CreditAccount.objects.get(org=org).features == ["basic_workflows"]
    with pytest.raises(FeatureNotInPlan):
        usage_services.usage_record(org=org, event=usage_services.UsageInput(
            idempotency_key="after", meter="image.generated", model="gpt-image-1", quantity=Decimal(1)))
    with pytest.raises(PlanLimitReached):
        account_services.api_key_create(org=org, name="more", actor=owner)
    # What was there before stays: the event, the three keys.
    assert UsageEvent.objects.filter(account__org=org).get().pk == kept.pk
    assert OrgAPIKey.objects.filter(pk__in=[k.pk for k in keys], revoked=False).count() == 3


def test_a_plan_change_writes_its_features_down_to_the_account(org, catalog):
    on_plan(org, "pro")
    assert "media_generation" in CreditAccount.objects.get(org=org).features
    on_plan(org, "free")
    assert CreditAccount.objects.get(org=org).features == ["basic_workflows"]


def test_staff_editing_a_plans_features_reaches_its_accounts_at_once(org, catalog, admin_client):
    on_plan(org, "starter")
    plan = Plan.objects.get(code="starter")
    plan.features = [*plan.features, "media_generation"]
    plan.save()

    assert services.plan_features_write_down(plan, actor="test") == 1
    assert "media_generation" in CreditAccount.objects.get(org=org).features
    usage_services.credits_grant(org=org, amount_micros=100 * C, source=GrantSource.PURCHASE)
    recorded = usage_services.usage_record(org=org, event=usage_services.UsageInput(
        idempotency_key="img", meter="image.generated", model="gpt-image-1", quantity=Decimal(1)))
    assert recorded.event.credits_micros > 0


def test_reloading_the_catalog_over_staff_edits_writes_the_features_down(org, catalog):
    on_plan(org, "free")
    Plan.objects.filter(code="free").update(features=["basic_workflows", "media_generation"])
    services.plan_features_write_down(Plan.objects.get(code="free"))
    assert "media_generation" in CreditAccount.objects.get(org=org).features

    services.catalog_load(overwrite=True)  # sync_catalog --reset

    assert Plan.objects.get(code="free").features == ["basic_workflows"]
    assert CreditAccount.objects.get(org=org).features == ["basic_workflows"]


def test_the_plan_admin_writes_edited_features_down(org, catalog, admin_client):
    on_plan(org, "free")
    plan = Plan.objects.get(code="free")
    response = admin_client.get(reverse("admin:billing_plan_change", args=[plan.pk]))
    form = response.context["adminform"].form
    data = {k: v for k, v in form.initial.items() if v is not None}
    data.update({
        "features": '["basic_workflows", "media_generation"]', "members_limit": "3", "api_keys_limit": "2",
        "prices-TOTAL_FORMS": "0", "prices-INITIAL_FORMS": "0", "prices-MIN_NUM_FORMS": "0",
        "prices-MAX_NUM_FORMS": "1000",
    })
    data.pop("stripe_product_id", None)
    response = admin_client.post(reverse("admin:billing_plan_change", args=[plan.pk]), data)

    assert response.status_code == 302, response.content.decode()[:2000]
    assert sorted(CreditAccount.objects.get(org=org).features) == ["basic_workflows", "media_generation"]


# --- the Plans page -----------------------------------------------------------------------


def test_the_plans_page_says_what_each_feature_unlocks_and_each_cap(org, owner, catalog):
    client = Client()
    client.force_login(owner)

    content = client.get("/billing/plans/").content.decode()

    assert 'data-testid="feature-media_generation"' in content
    assert "Record usage on the image, text-to-speech and video meters." in content
    assert "Up to 3 members" in content and "Up to 2 API keys" in content
    assert "Unlimited members" in content and "Unlimited API keys" in content
    assert 'id="plan-pro"' in content  # where a refusal's link lands
