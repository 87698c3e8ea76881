import pytest
from django.urls import reverse

from accounts.models import User
from orgs.models import AuditEvent, Membership, Role

pytestmark = pytest.mark.django_db


def _signup(client, email="Ada@Example.test", password="a long enough secret", name="Ada Lovelace"):
    return client.post(reverse("accounts:signup"), {"email": email, "password": password, "full_name": name})


def test_it_creates_a_personal_org_owned_by_the_new_user(client):
    response = _signup(client)

    assert response.status_code == 302
    user = User.objects.get()
    assert user.email == "ada@example.test"  # addresses are kept lower-case
    membership = Membership.objects.get(user=user)
    assert membership.role == Role.OWNER
    assert membership.org.is_personal
    assert membership.org.name == "Ada Lovelace"
    assert AuditEvent.objects.filter(org=membership.org, action="org.created").exists()


def test_it_signs_the_new_user_in(client):
    _signup(client)
    response = client.get(reverse("billing:overview"))
    assert response.status_code == 200
    assert b"Ada Lovelace" in response.content


def test_it_refuses_an_address_that_differs_only_in_case(client):
    _signup(client, email="ada@example.test")
    client.logout()
    response = _signup(client, email="ADA@example.TEST")

    assert response.status_code == 200
    assert "already exists" in response.content.decode()
    assert User.objects.count() == 1


def test_it_explains_a_weak_password(client):
    response = _signup(client, password="12345")

    assert response.status_code == 200
    assert "too short" in response.content.decode()
    assert not User.objects.exists()


def test_login_is_by_email_case_insensitively(client):
    _signup(client)
    client.logout()
    response = client.post(reverse("accounts:login"), {"username": "ADA@example.test", "password": "a long enough secret"})
    assert response.status_code == 302
    assert client.get(reverse("billing:overview")).status_code == 200


def test_pages_need_a_signed_in_user(client):
    response = client.get(reverse("billing:overview"))
    assert response.status_code == 302
    assert response.url.startswith(reverse("accounts:login"))


def test_password_reset_mails_a_working_link(client, mailoutbox):
    _signup(client)
    client.logout()
    client.post(reverse("accounts:password_reset"), {"email": "ada@example.test"})

    assert len(mailoutbox) == 1
    link = next(line for line in mailoutbox[0].body.splitlines() if "/accounts/password-reset/" in line)
    path = link.split("testserver", 1)[1]
    form_page = client.get(path, follow=True)
    assert form_page.status_code == 200
    set_url = form_page.redirect_chain[-1][0]
    done = client.post(set_url, {"new_password1": "a brand new secret", "new_password2": "a brand new secret"})
    assert done.status_code == 302
    signed_in = client.post(reverse("accounts:login"), {"username": "ada@example.test", "password": "a brand new secret"})
    assert signed_in.status_code == 302
