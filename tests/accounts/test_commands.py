import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from accounts.models import User
from orgs.models import Membership, Organization

pytestmark = pytest.mark.django_db


def test_create_org_creates_the_owner_when_missing(capsys):
    call_command("create_org", "initech", "--owner", "Boss@Initech.test", "--name", "Initech")
    org = Organization.objects.get(slug="initech")
    assert org.name == "Initech" and not org.is_personal
    user = User.objects.get(email="boss@initech.test")
    assert not user.has_usable_password()
    assert Membership.objects.get(org=org, user=user).role == "owner"


def test_create_org_uses_an_existing_user(org, owner):
    call_command("create_org", "second", "--owner", "owner@acme.test")
    assert Membership.objects.get(org__slug="second").user == owner


def test_create_org_refuses_a_taken_slug(org, owner):
    with pytest.raises(CommandError, match="taken"):
        call_command("create_org", "acme", "--owner", "owner@acme.test")


def test_create_org_takes_the_slug_the_new_owners_address_would_give_their_personal_org():
    call_command("create_org", "acme", "--owner", "acme@example.com")
    org = Organization.objects.get(slug="acme")
    assert not org.is_personal
    user = User.objects.get(email="acme@example.com")
    assert Membership.objects.get(org=org, user=user).role == "owner"
    personal = Organization.objects.get(memberships__user=user, is_personal=True)
    assert personal.slug != "acme"


def test_a_refused_create_org_leaves_no_new_user_behind(org, owner):
    with pytest.raises(CommandError, match="taken"):
        call_command("create_org", "acme", "--owner", "someone-new@example.com")
    assert not User.objects.filter(email="someone-new@example.com").exists()
    assert not Organization.objects.filter(memberships__user__email="someone-new@example.com").exists()
