from datetime import timedelta

import pytest
import time_machine
from django.urls import reverse
from django.utils import timezone

from billing_project.errors import Conflict, NotFound, PermissionDenied
from orgs import services
from orgs.models import Membership, Organization
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def _token_from(mail) -> str:
    line = next(line for line in mail.body.splitlines() if "/billing/invitations/" in line)
    return line.rstrip("/").rsplit("/", 1)[1]


def test_an_invitation_is_mailed_with_a_link(org, owner, mailoutbox, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        services.invitation_create(org=org, actor=owner, email="New@Person.test", role="billing")
    assert mailoutbox[0].to == ["new@person.test"]
    assert "Acme" in mailoutbox[0].subject
    assert _token_from(mailoutbox[0])


def test_a_signed_in_user_accepts_with_one_click(client, org, owner):
    _inv, token = services.invitation_create(org=org, actor=owner, email="bob@person.test", role="billing")
    from tests.factories import UserFactory

    bob = UserFactory(email="bob@person.test")
    client.force_login(bob)
    response = client.post(reverse("orgs:invitation", args=[token]))

    assert response.status_code == 302
    assert Membership.objects.get(org=org, user=bob).role == "billing"
    # and Bob is now working in that org
    assert client.get(reverse("billing:overview")).context["current_org"] == org


def test_an_invitation_opened_signed_out_is_accepted_at_sign_up(client, org, owner):
    _inv, token = services.invitation_create(org=org, actor=owner, email="carol@person.test")
    page = client.get(reverse("orgs:invitation", args=[token]))
    assert b"Create account" in page.content

    client.post(reverse("accounts:signup"), {"email": "carol@person.test", "password": "a long enough secret"})

    carol = Membership.objects.get(org=org, user__email="carol@person.test")
    assert carol.role == "member"


def test_an_invitation_opened_signed_out_is_accepted_at_login(client, org, owner):
    from tests.factories import PASSWORD, UserFactory

    UserFactory(email="dan@person.test")
    _inv, token = services.invitation_create(org=org, actor=owner, email="dan@person.test")
    client.get(reverse("orgs:invitation", args=[token]))
    client.post(reverse("accounts:login"), {"username": "dan@person.test", "password": PASSWORD})
    assert Membership.objects.filter(org=org, user__email="dan@person.test").exists()


def test_it_is_refused_for_someone_else(org, owner, outsider):
    _inv, token = services.invitation_create(org=org, actor=owner, email="eve@person.test")
    with pytest.raises(PermissionDenied):
        services.invitation_accept(token=token, user=outsider)
    assert not Membership.objects.filter(org=org, user=outsider).exists()


def test_a_link_works_once(org, owner):
    from tests.factories import UserFactory

    _inv, token = services.invitation_create(org=org, actor=owner, email="fay@person.test")
    services.invitation_accept(token=token, user=UserFactory(email="fay@person.test"))
    with pytest.raises(NotFound):
        services.invitation_accept(token=token, user=UserFactory(email="fay@person.test"))


def test_an_expired_link_is_refused(client, org, owner):
    _inv, token = services.invitation_create(org=org, actor=owner, email="gus@person.test")
    with time_machine.travel(timezone.now() + timedelta(days=8)):
        response = client.get(reverse("orgs:invitation", args=[token]))
    assert response.status_code == 404
    assert b"no longer valid" in response.content


def test_reinviting_replaces_the_old_link(org, owner):
    _inv, first = services.invitation_create(org=org, actor=owner, email="hal@person.test")
    _inv, second = services.invitation_create(org=org, actor=owner, email="HAL@person.test")
    with pytest.raises(NotFound):
        services.invitation_get(token=first)
    assert services.invitation_get(token=second).email == "hal@person.test"


def test_a_personal_org_takes_no_invitations(client):
    client.post(reverse("accounts:signup"), {"email": "solo@person.test", "password": "a long enough secret"})
    org = Organization.objects.get(is_personal=True)
    from accounts.models import User

    with pytest.raises(Conflict):
        services.invitation_create(org=org, actor=User.objects.get(), email="friend@person.test")


def test_an_existing_member_is_not_invited_again(org, owner, member):
    with pytest.raises(Conflict):
        services.invitation_create(org=org, actor=owner, email="MEMBER@acme.test")


def test_accepting_an_invitation_opens_a_welcome_that_says_who_what_and_what_next(client, org, owner):
    owner.full_name = "Olivia Owner"
    owner.save()
    _inv, token = services.invitation_create(org=org, actor=owner, email="bob@person.test", role="billing")

    client.force_login(UserFactory(email="bob@person.test"))
    response = client.post(reverse("orgs:invitation", args=[token]), follow=True)

    assert response.redirect_chain[-1][0] == reverse("orgs:welcome", args=["acme"])
    content = response.content.decode()
    assert "Welcome to Acme" in content and "Olivia Owner" in content
    assert 'data-testid="welcome-role">billing<' in content
    assert reverse("billing:top_up") in content  # billing managers can buy


def test_an_invitation_accepted_at_sign_up_lands_on_the_welcome(client, org, owner):
    _inv, token = services.invitation_create(org=org, actor=owner, email="carol@person.test")
    client.get(reverse("orgs:invitation", args=[token]))

    response = client.post(reverse("accounts:signup"), {"email": "carol@person.test",
                                                        "password": "a long enough secret"})

    assert response.url == reverse("orgs:welcome", args=["acme"])
    content = client.get(response.url).content.decode()
    assert 'data-testid="welcome-role">member<' in content
    assert "are for the organization's owners, admins and billing managers" in content


def test_the_welcome_of_an_org_you_are_not_in_is_a_404(client, org, outsider):
    client.force_login(outsider)
    assert client.get(reverse("orgs:welcome", args=["acme"])).status_code == 404
