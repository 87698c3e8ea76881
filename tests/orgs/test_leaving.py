"""Leaving an organization, and the invite form saying what each role may do."""

import pytest
from django.urls import reverse

from billing_project.errors import Conflict
from orgs import services
from orgs.models import Membership, Role
from tests.factories import MembershipFactory

pytestmark = pytest.mark.django_db


def test_it_does_not_offer_leave_to_the_last_owner(client, org, owner, member):
    client.force_login(owner)
    page = client.get(reverse("billing:members")).content.decode()
    assert ">Leave</button>" not in page
    assert "the only owner" in page


def test_it_offers_leave_to_an_owner_when_another_owner_remains(client, org, owner):
    MembershipFactory(org=org, role=Role.OWNER)
    client.force_login(owner)
    page = client.get(reverse("billing:members")).content.decode()
    assert ">Leave</button>" in page


def test_it_offers_leave_to_a_member(client, org, owner, member):
    client.force_login(member)
    assert ">Leave</button>" in client.get(reverse("billing:members")).content.decode()


def test_the_last_owner_leaving_is_refused_with_what_to_do_instead(org, owner):
    own = Membership.objects.get(org=org, user=owner)
    with pytest.raises(Conflict) as caught:
        services.membership_remove(org=org, actor=owner, membership=own)
    assert caught.value.code == "last_owner"
    assert caught.value.message == ("You are the only owner of Acme, so you cannot leave it. "
                                    "Make another member an owner first.")


def test_a_leave_posted_by_the_last_owner_anyway_changes_nothing_and_says_why(client, org, owner, member):
    client.force_login(owner)
    own = Membership.objects.get(org=org, user=owner)
    response = client.post(reverse("orgs:member_remove", args=[own.pk]), follow=True)
    assert "You are the only owner of Acme, so you cannot leave it." in response.content.decode()
    assert Membership.objects.filter(pk=own.pk, role=Role.OWNER).exists()


def test_the_invite_form_explains_each_role_next_to_its_choice(client, org, owner):
    client.force_login(owner)
    page = client.get(reverse("billing:members")).content.decode()
    for role in Role:
        assert f'data-testid="role-help-{role.value}"' in page
    assert "Uses the organization&#x27;s credits" in page
    assert "Buys credits" in page
