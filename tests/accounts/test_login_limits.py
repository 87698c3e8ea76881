"""Failed sign-ins are limited per account and client address (django-axes),
and password-reset requests per address and per client (the cache)."""

from datetime import timedelta

import pytest
import time_machine
from django.core import mail
from django.urls import reverse
from django.utils import timezone

from tests.factories import PASSWORD, UserFactory

pytestmark = pytest.mark.django_db

LOGIN = reverse("accounts:login")
RESET = reverse("accounts:password_reset")


def sign_in(client, email, password, ip="203.0.113.5"):
    return client.post(LOGIN, {"username": email, "password": password}, REMOTE_ADDR=ip)


@pytest.fixture
def user(db):
    return UserFactory(email="victim@example.test")


def test_it_locks_an_account_after_five_wrong_passwords_from_one_address(client, user):
    for _ in range(4):
        response = sign_in(client, user.email, "wrong password")
        assert response.status_code == 200
        assert "Please enter a correct" in response.content.decode()
    assert sign_in(client, user.email, "wrong password").status_code == 429  # the fifth
    response = sign_in(client, user.email, PASSWORD)
    assert response.status_code == 429
    assert "_auth_user_id" not in client.session
    content = response.content.decode()
    assert "Too many failed sign-ins" in content
    assert "Try again in 15 minutes" in content
    assert 'name="username"' in content  # the sign-in page, not a bare error page


def test_the_lock_lifts_after_the_cool_off(client, user):
    start = timezone.now()
    with time_machine.travel(start, tick=False):
        for _ in range(5):
            sign_in(client, user.email, "wrong password")
        assert sign_in(client, user.email, PASSWORD).status_code == 429
    with time_machine.travel(start + timedelta(minutes=16), tick=False):
        assert sign_in(client, user.email, PASSWORD).status_code == 302


def test_the_account_owner_can_still_sign_in_from_another_address(client, user):
    for _ in range(5):
        sign_in(client, user.email, "wrong password", ip="203.0.113.5")
    assert sign_in(client, user.email, PASSWORD, ip="198.51.100.7").status_code == 302


def test_a_right_password_before_the_limit_signs_in(client, user):
    for _ in range(4):
        sign_in(client, user.email, "wrong password")
    assert sign_in(client, user.email, PASSWORD).status_code == 302


def test_one_address_guessing_across_many_accounts_is_stopped(client, user, settings):
    settings.LOGIN_IP_FAILURE_LIMIT = 12
    for n in range(12):
        sign_in(client, f"someone{n}@example.test", "guess")
    response = sign_in(client, user.email, PASSWORD)
    assert response.status_code == 429
    assert "Too many failed sign-ins from your address" in response.content.decode()
    assert "_auth_user_id" not in client.session
    # Other addresses are not affected.
    assert sign_in(client, user.email, PASSWORD, ip="198.51.100.7").status_code == 302


def request_reset(client, email, ip="203.0.113.5"):
    return client.post(RESET, {"email": email}, REMOTE_ADDR=ip)


def test_password_reset_requests_are_limited_per_address(client, user):
    for _ in range(3):
        assert request_reset(client, user.email).status_code == 302
    assert len(mail.outbox) == 3
    response = request_reset(client, user.email, ip="198.51.100.7")
    assert response.status_code == 429
    assert "Too many reset requests" in response.content.decode()
    assert len(mail.outbox) == 3


def test_an_unknown_address_is_limited_the_same_way(client):
    for _ in range(3):
        assert request_reset(client, "nobody@example.test").status_code == 302
    assert request_reset(client, "nobody@example.test").status_code == 429


def test_password_reset_requests_are_limited_per_client(client, settings):
    settings.PASSWORD_RESET_CLIENT_LIMIT = 5
    for n in range(5):
        assert request_reset(client, f"person{n}@example.test").status_code == 302
    response = request_reset(client, "another@example.test")
    assert response.status_code == 429
    assert request_reset(client, "another@example.test", ip="198.51.100.7").status_code == 302


def test_the_reset_limit_lifts_after_an_hour(client, user):
    start = timezone.now()
    with time_machine.travel(start, tick=False):
        for _ in range(3):
            request_reset(client, user.email)
        assert request_reset(client, user.email).status_code == 429
    with time_machine.travel(start + timedelta(minutes=61), tick=False):
        assert request_reset(client, user.email).status_code == 302
