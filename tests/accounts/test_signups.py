"""The sign-up seam: apps above accounts react to a new account."""

import pytest

from accounts import services as account_services
from accounts import signups
from accounts.models import User
from billing import services as billing_services

pytestmark = pytest.mark.django_db


@pytest.fixture
def extra_receiver():
    added = []

    def add(receiver):
        signups.receiver_add(receiver)
        added.append(receiver)

    yield add
    for receiver in added:
        signups._receivers.remove(receiver)


def test_billing_starts_the_trial_on_every_sign_up():
    assert billing_services.trial_start_for_signup in signups._receivers


def test_a_receiver_sees_the_user_and_their_personal_org(extra_receiver):
    seen = []
    extra_receiver(seen.append)
    user = account_services.user_signup(email="new@example.test", password="pw-123456789")
    assert [(e.user, e.org.is_personal) for e in seen] == [(user, True)]


def test_a_failing_receiver_undoes_the_sign_up(extra_receiver):
    def refuse(event):
        raise RuntimeError("no")

    extra_receiver(refuse)
    with pytest.raises(RuntimeError):
        account_services.user_signup(email="new@example.test", password="pw-123456789")
    assert not User.objects.filter(email="new@example.test").exists()


def test_adding_a_receiver_twice_runs_it_once(extra_receiver):
    seen = []
    extra_receiver(seen.append)
    signups.receiver_add(seen.append)
    account_services.user_signup(email="new@example.test", password="pw-123456789")
    assert len(seen) == 1
