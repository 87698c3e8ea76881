"""The API-key check as a service, apart from any transport."""

from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone

from accounts import services as account_services
from accounts.models import OrgAPIKey
from billing_project.errors import AuthenticationFailed
from tests.factories import api_key_for

pytestmark = pytest.mark.django_db


def test_it_returns_the_key_its_org_and_scopes(org):
    key, secret = api_key_for(org, scopes=("read",))
    check = account_services.api_key_authenticate(raw_key=secret)
    assert check.key.pk == key.pk
    assert check.org == org and check.org.slug == org.slug
    assert check.scopes == ("read",)


@pytest.mark.parametrize("raw_key", ["", "nodot", "AAAAAAAA.wrong-secret"])
def test_it_refuses_unknown_keys(org, raw_key):
    with pytest.raises(AuthenticationFailed, match="not valid") as refused:
        account_services.api_key_authenticate(raw_key=raw_key)
    assert refused.value.status == 401 and refused.value.code == "authentication_failed"


def test_it_refuses_a_known_prefix_with_the_wrong_secret(org):
    _key, secret = api_key_for(org)
    prefix = secret.split(".")[0]
    with pytest.raises(AuthenticationFailed, match="not valid"):
        account_services.api_key_authenticate(raw_key=f"{prefix}.not-the-secret")


def test_it_refuses_a_revoked_key(org, owner):
    key, secret = api_key_for(org)
    account_services.api_key_revoke(org=org, key=key, actor=owner)
    with pytest.raises(AuthenticationFailed, match="revoked"):
        account_services.api_key_authenticate(raw_key=secret)


def test_it_refuses_an_expired_key(org):
    key, secret = api_key_for(org)
    OrgAPIKey.objects.filter(pk=key.pk).update(expiry_date=timezone.now() - timedelta(seconds=1))
    with pytest.raises(AuthenticationFailed, match="expired"):
        account_services.api_key_authenticate(raw_key=secret)


def test_it_records_last_use_at_most_once_a_minute(org):
    key, secret = api_key_for(org)
    with time_machine.travel("2026-03-01 12:00:00Z", tick=False):
        first = account_services.api_key_authenticate(raw_key=secret).key.last_used_at
    with time_machine.travel("2026-03-01 12:00:30Z", tick=False):
        account_services.api_key_authenticate(raw_key=secret)
    key.refresh_from_db()
    assert key.last_used_at == first
    with time_machine.travel("2026-03-01 12:01:01Z", tick=False):
        account_services.api_key_authenticate(raw_key=secret)
    key.refresh_from_db()
    assert key.last_used_at > first


def test_what_the_usage_path_reads_from_the_key_and_its_org_costs_no_query(org, django_assert_num_queries):
    # Pause, key budget and who pays are read on every usage event; a deferred
    # column would cost a query each (and the key's __init__ another).
    _key, secret = api_key_for(org, scopes=("read", "usage:write"))
    check = account_services.api_key_authenticate(raw_key=secret)
    with django_assert_num_queries(0):
        assert check.key.paused_at is None
        assert check.key.monthly_limit_micros is None
        assert check.key.meters == []
        assert check.org.member_usage == org.member_usage
        assert check.org.members_paid_since is None
        assert check.org.pause_on_runaway == org.pause_on_runaway
        assert check.org.usage_paused_at is None  # staff's pause of the organization
