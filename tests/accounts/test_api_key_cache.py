"""The per-process cache of the API key check (accounts.key_cache): one read of
the key's row a second per process, and every edit of the key or its
organization seen by every process within that second.

"Another process" here is any change this process's cache was not told about:
a row updated in the database directly, as another process's service does."""

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.utils import timezone
from rest_framework.test import APIClient

from accounts import key_cache
from accounts import services as account_services
from accounts.models import OrgAPIKey
from billing_project.errors import AuthenticationFailed
from orgs.models import Organization
from tests.factories import api_key_for
from usage.errors import OrgUsagePaused, UsagePaused
from usage.services.pause import key_limited, key_require_meter, key_require_unpaused

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def cache_on(settings):
    settings.API_KEY_CACHE_SECONDS = 1
    key_cache.api_keys_forget_all()
    yield
    key_cache.api_keys_forget_all()


def at(seconds: float):
    return time_machine.travel(T0 + timedelta(seconds=seconds), tick=False)


def test_it_reads_the_key_once_a_second(org, django_assert_num_queries):
    _key, secret = api_key_for(org)
    with at(0), django_assert_num_queries(2):  # the row, and last_used_at
        account_services.api_key_authenticate(raw_key=secret)
    with at(0.999), django_assert_num_queries(0):
        check = account_services.api_key_authenticate(raw_key=secret)
    assert check.org.pk == org.pk
    with at(1.0), django_assert_num_queries(1):  # read again; last use was written 1 s ago
        account_services.api_key_authenticate(raw_key=secret)


def test_a_key_revoked_on_another_process_is_refused_within_one_second(org):
    key, secret = api_key_for(org)
    with at(0):
        account_services.api_key_authenticate(raw_key=secret)
        OrgAPIKey.objects.filter(pk=key.pk).update(revoked=True, revoked_at=timezone.now())
    with at(0.5):
        account_services.api_key_authenticate(raw_key=secret)  # this process has not seen it yet
    with at(1.0), pytest.raises(AuthenticationFailed, match="revoked"):
        account_services.api_key_authenticate(raw_key=secret)


def test_the_api_refuses_a_key_revoked_elsewhere_within_one_second(org):
    key, secret = api_key_for(org, scopes=("read",))
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    with at(0):
        assert api.get("/api/v1/balance").status_code == 200
        OrgAPIKey.objects.filter(pk=key.pk).update(revoked=True, revoked_at=timezone.now())
    with at(0.999):
        assert api.get("/api/v1/balance").status_code == 200
    with at(1.0):
        response = api.get("/api/v1/balance")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "authentication_failed"


def test_the_process_that_revokes_a_key_refuses_it_at_once(org, owner, django_capture_on_commit_callbacks):
    key, secret = api_key_for(org)
    with at(0):
        account_services.api_key_authenticate(raw_key=secret)
        with django_capture_on_commit_callbacks(execute=True):
            account_services.api_key_revoke(org=org, key=key, actor=owner)
        with pytest.raises(AuthenticationFailed, match="revoked"):
            account_services.api_key_authenticate(raw_key=secret)


def test_an_expiry_that_passes_is_seen_on_the_next_call(org):
    key, secret = api_key_for(org)
    OrgAPIKey.objects.filter(pk=key.pk).update(expiry_date=T0 + timedelta(seconds=0.5))
    with at(0):
        account_services.api_key_authenticate(raw_key=secret)
    with at(0.6), pytest.raises(AuthenticationFailed, match="expired"):
        account_services.api_key_authenticate(raw_key=secret)


def test_pause_budget_meters_and_who_pays_edits_are_seen_within_one_second(org):
    key, secret = api_key_for(org)
    with at(0):
        check = account_services.api_key_authenticate(raw_key=secret)
        key_require_unpaused(check.key, check.org)
        assert not key_limited(check.key)
        key_require_meter(check.key, "ai.input_tokens")
        # Edited elsewhere: the runaway breaker pauses the key, an owner gives it
        # a budget and a list of meters, the org's members start paying.
        OrgAPIKey.objects.filter(pk=key.pk).update(
            paused_at=timezone.now(), paused_reason="runaway", monthly_limit_micros=5, meters=["compute.seconds"])
        Organization.objects.filter(pk=org.pk).update(member_usage="personal", members_paid_since=timezone.now())
    with at(1.0):
        check = account_services.api_key_authenticate(raw_key=secret)
    with pytest.raises(UsagePaused):
        key_require_unpaused(check.key, check.org)
    assert key_limited(check.key) and check.key.monthly_limit_micros == 5
    assert check.key.meters == ["compute.seconds"]
    assert check.org.member_usage == "personal" and check.org.members_paid_since is not None


def test_staff_pausing_the_organization_is_seen_within_one_second(org):
    _key, secret = api_key_for(org)
    with at(0):
        account_services.api_key_authenticate(raw_key=secret)
        Organization.objects.filter(pk=org.pk).update(usage_paused_at=timezone.now())
    with at(1.0):
        check = account_services.api_key_authenticate(raw_key=secret)
    with pytest.raises(OrgUsagePaused):
        key_require_unpaused(check.key, check.org)


def test_a_clock_set_back_reads_the_row_again(org, django_assert_num_queries):
    _key, secret = api_key_for(org)
    with at(10):
        account_services.api_key_authenticate(raw_key=secret)
    with at(9.5), django_assert_num_queries(1):
        account_services.api_key_authenticate(raw_key=secret)


def test_each_call_gets_instances_of_its_own(org):
    _key, secret = api_key_for(org)
    with at(0):
        first = account_services.api_key_authenticate(raw_key=secret)
        first.key.scopes.append("billing:write")
        first.org.name = "changed by a request"
        second = account_services.api_key_authenticate(raw_key=secret)
    assert second.key is not first.key and second.org is not first.org
    assert "billing:write" not in second.key.scopes and second.org.name == "Acme"


def test_the_wrong_secret_is_refused_from_a_cached_row(org):
    _key, secret = api_key_for(org)
    prefix = secret.split(".")[0]
    with at(0):
        account_services.api_key_authenticate(raw_key=secret)
        with pytest.raises(AuthenticationFailed, match="not valid"):
            account_services.api_key_authenticate(raw_key=f"{prefix}.not-the-secret")


def test_a_new_key_works_at_once(org):
    with at(0):
        with pytest.raises(AuthenticationFailed):
            account_services.api_key_authenticate(raw_key="AAAAAAAA.nothing")
        _key, secret = api_key_for(org)
        assert account_services.api_key_authenticate(raw_key=secret).org.pk == org.pk


def test_last_use_is_still_written_at_most_once_a_minute(org, django_assert_num_queries):
    key, secret = api_key_for(org)
    for second in (0, 1, 2, 30, 59):
        with at(second):
            account_services.api_key_authenticate(raw_key=secret)
    key.refresh_from_db()
    assert key.last_used_at == T0
    with at(61), django_assert_num_queries(2):  # the row (a second old), and last_used_at
        account_services.api_key_authenticate(raw_key=secret)
    key.refresh_from_db()
    assert key.last_used_at == T0 + timedelta(seconds=61)
