"""Sending credits takes two steps: the form, then a confirmation naming the
receiving organization and the amount. Nothing moves before the second, the
look-up of a recipient is limited per user, and every field error shows at once."""

import uuid
from datetime import timedelta

import pytest
import time_machine
from django.core import signing
from django.urls import reverse
from django.utils import timezone

from accounts.services import user_signup
from orgs.models import Role
from tests.billing.helpers import C, grant
from tests.billing.test_send_credits import CONFIRM, URL, balance, review
from tests.factories import MembershipFactory, OrganizationFactory
from usage import services
from usage.models import GrantSource, Transfer

pytestmark = pytest.mark.django_db


@pytest.fixture
def friend(db):
    return user_signup(email="friend@example.test", password="correct horse battery", full_name="Fran Friend")


def test_nothing_moves_until_the_sender_confirms(client, org, owner, friend):
    grant(org, 100)
    client.force_login(owner)
    response = review(client, recipient="friend@example.test", amount="25.5", note="Coffee")
    assert response.status_code == 200
    content = response.content.decode()
    assert 'data-testid="send-confirm"' in content
    assert "Fran Friend" in content and "25.5" in content and "Coffee" in content
    assert Transfer.objects.count() == 0
    assert balance(org) == 100 * C

    done = client.post(CONFIRM, {"pending": response.context["pending"]})
    assert done.status_code == 302
    personal = friend.memberships.get().org
    assert balance(personal) == 25_500_000
    assert Transfer.objects.get().note == "Coffee"


def test_confirming_twice_sends_once(client, org, owner, other_org):
    grant(org, 100)
    client.force_login(owner)
    pending = review(client, recipient="globex", amount="10").context["pending"]
    for _ in range(2):
        assert client.post(CONFIRM, {"pending": pending}).status_code == 302
    assert Transfer.objects.count() == 1
    assert balance(other_org) == 10 * C


@pytest.mark.parametrize("pending", ["", "garbage", "x" * 5000])
def test_a_forged_confirmation_moves_nothing(client, org, owner, other_org, pending):
    grant(org, 100)
    client.force_login(owner)
    response = client.post(CONFIRM, {"pending": pending}, follow=True)
    assert response.status_code == 200
    assert "This confirmation is no longer valid" in response.content.decode()
    assert Transfer.objects.count() == 0


def test_a_confirmation_signed_for_another_organization_is_refused(client, org, owner, other_org):
    grant(org, 100)
    grant(other_org, 100)
    outsider = other_org.memberships.get().user
    client.force_login(outsider)
    pending = review(client, recipient="acme", amount="10").context["pending"]
    client.force_login(owner)  # same browser, other organization
    response = client.post(CONFIRM, {"pending": pending}, follow=True)
    assert "This confirmation is no longer valid" in response.content.decode()
    assert Transfer.objects.count() == 0


def test_a_confirmation_expires(client, org, owner, other_org):
    grant(org, 100)
    client.force_login(owner)
    pending = review(client, recipient="globex", amount="10").context["pending"]
    with time_machine.travel(timezone.now() + timedelta(minutes=31)):
        response = client.post(CONFIRM, {"pending": pending}, follow=True)
    assert "This confirmation is no longer valid" in response.content.decode()
    assert Transfer.objects.count() == 0


def test_a_member_cannot_confirm(client, org, owner, member, other_org):
    grant(org, 100)
    client.force_login(owner)
    pending = review(client, recipient="globex", amount="10").context["pending"]
    client.force_login(member)
    assert client.post(CONFIRM, {"pending": pending}).status_code == 403
    assert Transfer.objects.count() == 0


def test_the_confirmation_is_checked_again_when_credits_ran_out_meanwhile(client, org, owner, other_org):
    grant(org, 100)
    client.force_login(owner)
    pending = review(client, recipient="globex", amount="80").context["pending"]
    third = OrganizationFactory()
    services.credits_transfer(from_org=org, to_org=third, amount_micros=50 * C, idempotency_key="other-tab")
    response = client.post(CONFIRM, {"pending": pending})
    assert response.status_code == 200
    assert "You can send up to 50 credits" in " ".join(response.context["form"].errors["amount"])
    assert not Transfer.objects.filter(to_account__org=other_org).exists()


def test_every_field_error_arrives_at_once(client, org, owner):
    grant(org, 60)
    client.force_login(owner)
    response = review(client, recipient="nobody@example.test", amount="61", note="x" * 281)
    errors = response.context["form"].errors
    assert set(errors) == {"recipient", "amount", "note"}
    assert "You can send up to 60 credits" in " ".join(errors["amount"])


def test_unknown_and_known_addresses_look_the_same_without_credits_to_send(client, org, owner, friend):
    grant(org, 100, GrantSource.TRIAL)  # nothing purchased: nothing can be sent
    client.force_login(owner)
    known = review(client, recipient="friend@example.test", amount="5")
    unknown = review(client, recipient="nobody@example.test", amount="5")
    assert dict(known.context["form"].errors) == dict(unknown.context["form"].errors)
    assert "recipient" not in known.context["form"].errors


def test_recipient_look_ups_are_limited_per_user(client, org, owner, friend, settings):
    settings.TRANSFER_LOOKUP_LIMIT = 3
    grant(org, 100)
    client.force_login(owner)
    for n in range(3):
        review(client, recipient=f"someone{n}@example.test", amount="5")
    response = review(client, recipient="friend@example.test", amount="5")
    assert response.status_code == 429
    message = " ".join(response.context["form"].errors["recipient"])
    assert "Too many recipients looked up" in message and "Try again in" in message
    assert "pending" not in response.context
    # Another user of the same organization has their own allowance.
    admin = MembershipFactory(org=org, role=Role.ADMIN).user
    client.force_login(admin)
    assert "pending" in review(client, recipient="friend@example.test", amount="5").context


def test_the_pending_transfer_is_signed_not_trusted(client, org, owner, other_org):
    grant(org, 100)
    client.force_login(owner)
    pending = review(client, recipient="globex", amount="10").context["pending"]
    payload = signing.loads(pending, salt="billing.send")
    payload["amount"] = 90 * C
    forged = signing.dumps(payload, salt="not.the.salt")
    client.post(CONFIRM, {"pending": forged})
    assert Transfer.objects.count() == 0
    assert reverse("billing:send_confirm") == "/billing/send/confirm/"
    assert uuid.UUID(hex=payload["key"])
