"""The organization-created seam: apps above orgs react to a new organization
(billing starts its Free plan) inside the transaction that creates it."""

import pytest

from billing import services as billing_services
from orgs import creations
from orgs import services
from orgs.models import Organization
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def extra_receiver():
    added = []

    def add(receiver):
        creations.receiver_add(receiver)
        added.append(receiver)

    yield add
    for receiver in added:
        creations._receivers.remove(receiver)


def test_billing_starts_new_organizations_on_free():
    assert billing_services.free_start_for_new_org in creations._receivers


def test_a_receiver_sees_the_org_and_its_owner(extra_receiver):
    seen = []
    extra_receiver(seen.append)
    owner = UserFactory(email="founder@team.test")

    org = services.org_create(name="Team", owner=owner)

    assert [(e.org, e.owner, e.org.is_personal) for e in seen] == [(org, owner, False)]


def test_a_failing_receiver_undoes_the_creation(extra_receiver):
    def refuse(event):
        raise RuntimeError("no")

    extra_receiver(refuse)
    with pytest.raises(RuntimeError):
        services.org_create(name="Team", owner=UserFactory())
    assert not Organization.objects.filter(name="Team").exists()


def test_adding_a_receiver_twice_runs_it_once(extra_receiver):
    seen = []
    extra_receiver(seen.append)
    creations.receiver_add(seen.append)
    services.org_create(name="Team", owner=UserFactory())
    assert len(seen) == 1
