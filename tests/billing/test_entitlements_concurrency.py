"""Real threads, real commits: a plan's caps hold when keys are made and people
are invited at the same moment (the org row lock keeps each count true)."""

import pytest

from accounts import services as account_services
from accounts.models import OrgAPIKey
from billing import services
from orgs import services as org_services
from orgs.entitlements import PlanLimitReached
from orgs.models import Invitation
from tests.factories import MembershipFactory, OrganizationFactory, UserFactory
from tests.usage.test_concurrency import run_concurrently

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def free_org():
    services.catalog_load()  # a transactional test starts from empty tables
    org = OrganizationFactory()
    owner = MembershipFactory(org=org, role="owner", user=UserFactory()).user
    services.billing_state_for(org)  # Free: 3 members, 2 API keys
    return org, owner


def test_concurrent_key_creations_stop_at_the_plans_cap(free_org):
    org, owner = free_org

    results = run_concurrently(lambda i: account_services.api_key_create(org=org, name=f"k{i}", actor=owner), count=8)

    made = [r for r in results if isinstance(r, tuple)]
    refused = [r for r in results if isinstance(r, PlanLimitReached)]
    assert (len(made), len(refused)) == (2, 6), results
    assert OrgAPIKey.objects.filter(org=org).count() == 2


def test_concurrent_invitations_stop_at_the_plans_cap(free_org):
    org, owner = free_org

    results = run_concurrently(
        lambda i: org_services.invitation_create(org=org, actor=owner, email=f"p{i}@example.test"), count=8)

    sent = [r for r in results if isinstance(r, tuple)]
    refused = [r for r in results if isinstance(r, PlanLimitReached)]
    assert (len(sent), len(refused)) == (2, 6), results  # the owner and two invitations: three seats
    assert Invitation.objects.filter(org=org, revoked_at__isnull=True).count() == 2
