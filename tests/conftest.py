import ipaddress
import socket

import pytest
from django.core.cache import cache
from django.db import connection
from rest_framework.test import APIClient

from tests.factories import MembershipFactory, OrganizationFactory, UserFactory, api_key_for
from usage.sql import ledger_functions


# --- nothing leaves the machine -------------------------------------------
# Stripe is reached only through `responses` at the HTTP edge; a real socket
# to anywhere but this machine fails the test that opened it.
_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex


def _is_local(address) -> bool:
    if isinstance(address, (str, bytes)):  # AF_UNIX path
        return True
    host = address[0]
    if host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _guarded(real):
    def connect(self, address):
        if not _is_local(address):
            raise RuntimeError(f"Test tried to open a network connection to {address!r}; intercept it instead.")
        return real(self, address)

    return connect


socket.socket.connect = _guarded(_real_connect)
socket.socket.connect_ex = _guarded(_real_connect_ex)


# --- limits start from zero ------------------------------------------------
# Rate limits count in the cache (per-process memory in the tests), so one
# test's password resets or look-ups never lock out the next test. Failed
# sign-ins count in the database (django-axes), which each test rolls back.


@pytest.fixture(autouse=True)
def _empty_cache():
    cache.clear()
    yield
    cache.clear()


# --- the cast: an owner, a team member, an outsider ------------------------


@pytest.fixture
def org(db):
    return OrganizationFactory(name="Acme", slug="acme")


@pytest.fixture
def owner(org):
    return MembershipFactory(org=org, role="owner", user=UserFactory(email="owner@acme.test")).user


@pytest.fixture
def member(org):
    return MembershipFactory(org=org, role="member", user=UserFactory(email="member@acme.test")).user


@pytest.fixture
def other_org(db):
    other = OrganizationFactory(name="Globex", slug="globex")
    MembershipFactory(org=other, role="owner", user=UserFactory(email="owner@globex.test"))
    return other


@pytest.fixture
def outsider(other_org):
    return other_org.memberships.get().user


@pytest.fixture
def api_key(org):
    _key, secret = api_key_for(org)
    return secret


@pytest.fixture
def api(api_key):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key}")
    return client


# --- the database ------------------------------------------------------------


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup, django_db_blocker):
    """The suite builds its schema from the models, without migrations, so the
    ledger's SQL functions, which a migration installs, are installed here."""
    with django_db_blocker.unblock(), connection.cursor() as cursor:
        cursor.execute(ledger_functions())
