"""The runaway breaker: hourly baselines, trips once per episode, pause on runaway, resume."""

import threading
from collections import Counter
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from accounts.models import OrgAPIKey
from orgs.models import AuditEvent, Organization
from tests.factories import UserFactory, api_key_for
from usage import happenings, services, tasks
from usage.models import GrantSource, RunawayOccurrence, UsageEvent
from usage.selectors.runaway import hourly_baseline, spend_last_hour
from usage.services import UsageInput

C = 1_000_000
NOW = datetime(2026, 11, 2, 12, 30, tzinfo=UTC)  # the check runs at NOW


@pytest.fixture
def heard():
    got: list[happenings.Happening] = []
    happenings.receiver_register(got.append)
    yield got
    happenings.receiver_unregister(got.append)


@pytest.fixture
def staff(db):
    return UserFactory(email="staff@tollgate.test", is_staff=True)


@pytest.fixture
def aged_org(org, owner):
    """Acme, a month old, with credits to burn."""
    Organization.objects.filter(pk=org.pk).update(created_at=NOW - timedelta(days=30))
    org.refresh_from_db()
    services.credits_grant(org=org, amount_micros=1_000_000 * C, source=GrantSource.PURCHASE)
    return org


def key_made(org, at, scopes=("read", "usage:write"), name="worker"):
    with time_machine.travel(at, tick=False):
        key, secret = api_key_for(org, scopes=scopes, name=name)
    return key, secret


def spend(org, credits, at, key=None, n=[0]):
    """Record `credits` credits of usage at `at`, through `key` when given (action.small is 1 credit)."""
    n[0] += 1
    with time_machine.travel(at, tick=False):
        services.usage_record(
            org=org, actor=key,
            event=UsageInput(idempotency_key=f"e{n[0]}", meter="action.small", quantity=Decimal(credits)),
        )


def usual_week(org, key, per_day=24):
    """`per_day` credits a day for the 7 days before the last hour: a baseline of per_day / 24 an hour."""
    for day in range(7):
        spend(org, per_day, NOW - timedelta(hours=2) - timedelta(days=day), key)


def check(at=NOW):
    with time_machine.travel(at, tick=False):
        return services.runaway_check()


# --- the arithmetic ------------------------------------------------------------------


def test_the_baseline_is_the_weeks_spend_over_168_hours(aged_org):
    key, _ = key_made(aged_org, NOW - timedelta(days=10))
    usual_week(aged_org, key)
    spend(aged_org, 600, NOW - timedelta(minutes=10), key)
    spend(aged_org, 5, NOW - timedelta(days=9), key)  # before the 7 days: not counted
    account_id = UsageEvent.objects.filter(api_key_prefix=key.prefix).first().account_id
    for prefix in (key.prefix, None):
        baseline = hourly_baseline(account_id=account_id, api_key_prefix=prefix, since=NOW - timedelta(days=30), now=NOW)
        assert (baseline.total_micros, baseline.hours, baseline.per_hour_micros) == (168 * C, 168, C)
    with time_machine.travel(NOW, tick=False):
        rows = spend_last_hour(now=NOW)
    assert {(r.api_key_prefix, r.spend_micros) for r in rows} == {(None, 600 * C), (key.prefix, 600 * C)}


def test_a_key_younger_than_a_week_is_compared_with_the_hours_it_existed(aged_org):
    key, _ = key_made(aged_org, NOW - timedelta(hours=25))
    spend(aged_org, 48, NOW - timedelta(hours=3), key)
    account_id = UsageEvent.objects.get(api_key_prefix=key.prefix).account_id
    baseline = hourly_baseline(account_id=account_id, api_key_prefix=key.prefix, since=key.created, now=NOW)
    assert (baseline.total_micros, baseline.hours, baseline.per_hour_micros) == (48 * C, 24, 2 * C)


def test_the_usage_event_names_the_key_that_recorded_it_on_both_write_paths(aged_org, debit_path):
    key, _ = key_made(aged_org, NOW - timedelta(days=1))
    spend(aged_org, 3, NOW, key)
    services.usage_record_batch(org=aged_org, actor=key, events=[
        UsageInput(idempotency_key="b1", meter="action.small", quantity=Decimal(1))])
    spend(aged_org, 3, NOW)  # no key: a person or the system
    assert Counter(UsageEvent.objects.values_list("api_key_prefix", flat=True)) == {key.prefix: 2, None: 1}


# --- tripping ----------------------------------------------------------------------------


def test_a_burst_over_ten_times_the_baseline_trips_the_key_and_the_org_once_each(
    aged_org, staff, heard, mailoutbox, django_capture_on_commit_callbacks
):
    key, _ = key_made(aged_org, NOW - timedelta(days=10))
    usual_week(aged_org, key)
    spend(aged_org, 600, NOW - timedelta(minutes=20), key)
    with django_capture_on_commit_callbacks(execute=True):
        trips = check()
    assert {(t.occurrence.api_key_prefix, t.paused) for t in trips} == {("", False), (key.prefix, False)}
    assert {(h.type, h.data["key_prefix"]) for h in heard} == {("usage.unusual", None), ("usage.unusual", key.prefix)}
    by_key = next(h for h in heard if h.data["key_prefix"])
    assert by_key.data["spend"] == "600" and by_key.data["baseline"] == "1" and by_key.data["multiple"] == 10
    assert by_key.key == services.occurrence_key(RunawayOccurrence.objects.get(api_key_prefix=key.prefix))
    # those who pay and staff, for each scope
    assert sorted(m.to[0] for m in mailoutbox) == ["owner@acme.test"] * 2 + ["staff@tollgate.test"] * 2
    assert any(key.prefix in m.subject or key.prefix in m.body for m in mailoutbox)
    assert not OrgAPIKey.objects.get(pk=key.pk).paused_at  # pause on runaway is off: notify only


def test_spend_under_the_minimum_or_within_the_multiple_does_not_trip(aged_org, heard, settings):
    young, _ = key_made(aged_org, NOW - timedelta(minutes=30), name="young")
    spend(aged_org, 499, NOW - timedelta(minutes=5), young)  # a baseline of 0, but under 500 credits
    assert check() == []
    aged, _ = key_made(aged_org, NOW - timedelta(days=10), name="aged")
    usual_week(aged_org, aged, per_day=24 * 60)  # 60 an hour
    spend(aged_org, 550, NOW - timedelta(minutes=5), aged)  # 550 < 10 × 60
    settings.RUNAWAY_MIN_CREDITS = 100
    # the young key: 499 > 10 × 0; the org: 1,049 > 10 × its 60 an hour; the aged key: 550 ≤ 600
    assert {t.occurrence.api_key_prefix for t in check()} == {young.prefix, ""}
    settings.RUNAWAY_MULTIPLE = 5  # 550 > 5 × 60
    assert {t.occurrence.api_key_prefix for t in check()} == {aged.prefix}


def test_a_task_run_twice_or_again_within_the_hour_is_one_occurrence(
    aged_org, heard, mailoutbox, django_capture_on_commit_callbacks
):
    key, _ = key_made(aged_org, NOW - timedelta(days=10))
    spend(aged_org, 700, NOW - timedelta(minutes=2), key)
    with django_capture_on_commit_callbacks(execute=True):
        assert len(check()) == 2
        assert check() == []
        assert check(NOW + timedelta(minutes=35)) == []  # the next clock hour, same episode
    assert RunawayOccurrence.objects.count() == 2
    assert len(heard) == 2 and len(mailoutbox) == 2
    # a later episode is a new occurrence
    spend(aged_org, 9000, NOW + timedelta(hours=2), key)
    with django_capture_on_commit_callbacks(execute=True):
        assert {t.occurrence.api_key_prefix for t in check(NOW + timedelta(hours=2, minutes=5))} == {"", key.prefix}


# --- pause on runaway --------------------------------------------------------------------


def paused_setup(org):
    org.pause_on_runaway = True
    org.save(update_fields=["pause_on_runaway"])
    key, secret = key_made(org, NOW - timedelta(days=10))
    spend(org, 600, NOW - timedelta(minutes=20), key)
    return key, secret


def client(secret):
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return api


def test_pause_on_runaway_pauses_the_key_and_its_usage_answers_402_usage_paused(
    aged_org, heard, mailoutbox, django_capture_on_commit_callbacks
):
    key, secret = paused_setup(aged_org)
    with django_capture_on_commit_callbacks(execute=True):
        trips = check()
    assert {(t.occurrence.api_key_prefix, t.paused) for t in trips} == {("", False), (key.prefix, True)}
    key.refresh_from_db()
    assert key.paused_at == NOW and "600 credits in an hour" in key.paused_reason
    assert sorted(h.type for h in heard) == ["usage.paused", "usage.unusual", "usage.unusual"]
    assert [m for m in mailoutbox if "paused" in m.subject]
    assert AuditEvent.objects.filter(action="api_key.paused", data__prefix=key.prefix).exists()
    api = client(secret)
    hold = services.hold_create(org=aged_org, amount_micros=5 * C)
    event = {"idempotency_key": "x1", "meter": "action.small", "quantity": "1"}
    for url, body in [("/api/v1/usage/events", event), ("/api/v1/usage/events/batch", {"events": [event]}),
                      ("/api/v1/holds", {"credits": "5", "idempotency_key": "h1"}),
                      (f"/api/v1/holds/{hold.pk}/capture", {"credits": "1"}),
                      (f"/api/v1/holds/{hold.pk}/capture", {"events": [event]})]:
        response = api.post(url, body, format="json")
        assert response.status_code == 402, (url, response.content)
        error = response.json()["error"]
        assert error["type"] == "payment_required" and error["code"] == "usage_paused"
        assert error["key_prefix"] == key.prefix and error["resume_url"].endswith("/billing/api-keys/")
    assert not UsageEvent.objects.filter(idempotency_key="x1").exists()
    assert api.post(f"/api/v1/holds/{hold.pk}/release").status_code == 200  # giving credits back stays open


def test_an_org_level_trip_without_a_key_only_notifies(aged_org, heard, django_capture_on_commit_callbacks):
    aged_org.pause_on_runaway = True
    aged_org.save(update_fields=["pause_on_runaway"])
    spend(aged_org, 800, NOW - timedelta(minutes=20))  # recorded by no key
    with django_capture_on_commit_callbacks(execute=True):
        trips = check()
    assert [(t.occurrence.api_key_prefix, t.paused) for t in trips] == [("", False)]
    assert [h.type for h in heard] == ["usage.unusual"]
    assert not OrgAPIKey.objects.filter(paused_at__isnull=False).exists()


def test_resume_through_the_api_needs_another_key_of_the_org(
    aged_org, other_org, heard, django_capture_on_commit_callbacks
):
    key, secret = paused_setup(aged_org)
    check()
    _admin_key, admin_secret = api_key_for(aged_org, scopes=["read", "billing:write"], name="admin")
    _other, other_secret = api_key_for(other_org, scopes=["read", "billing:write"], name="globex")
    url = f"/api/v1/api-keys/{key.prefix}/resume"
    assert client(other_secret).post(url).status_code == 404
    assert client(secret).post(url).json()["error"]["code"] in {"usage_paused", "permission_denied"}
    with django_capture_on_commit_callbacks(execute=True):
        response = client(admin_secret).post(url)
    assert response.status_code == 200, response.content
    assert response.json()["paused"] is False
    resumed = [h for h in heard if h.type == "usage.resumed"]
    assert len(resumed) == 1
    assert resumed[0].key == services.occurrence_key(RunawayOccurrence.objects.get(api_key_prefix=key.prefix))
    assert client(secret).post("/api/v1/usage/events", {"idempotency_key": "after", "meter": "action.small",
                                                         "quantity": "1"}, format="json").status_code == 201
    assert client(admin_secret).post(url).status_code == 200  # resuming again is harmless
    assert len([h for h in heard if h.type == "usage.resumed"]) == 1


def test_pause_on_runaway_is_set_through_the_api(aged_org):
    _key, secret = api_key_for(aged_org, scopes=["read", "billing:write"], name="admin")
    api = client(secret)
    assert api.get("/api/v1/org").json()["pause_on_runaway"] is False
    response = api.patch("/api/v1/org", {"pause_on_runaway": True}, format="json")
    assert response.status_code == 200 and response.json()["pause_on_runaway"] is True
    assert Organization.objects.get(pk=aged_org.pk).pause_on_runaway
    assert api.patch("/api/v1/org", {"pause_on_runaway": "maybe"}, format="json").status_code == 400
    _reader, reader_secret = api_key_for(aged_org, scopes=["read"], name="reader")
    assert client(reader_secret).patch("/api/v1/org", {"pause_on_runaway": False}, format="json").status_code == 403


# --- two beat processes at once ------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_runs_record_announce_and_notify_once(org, owner, staff, heard, mailoutbox):
    Organization.objects.filter(pk=org.pk).update(created_at=NOW - timedelta(days=30))
    services.credits_grant(org=org, amount_micros=100_000 * C, source=GrantSource.PURCHASE)
    key, _ = key_made(org, NOW - timedelta(days=10))
    spend(org, 700, NOW - timedelta(minutes=2), key)
    barrier = threading.Barrier(2)
    results, errors = [], []

    def run():
        try:
            barrier.wait()
            with time_machine.travel(NOW, tick=False):
                results.append(services.runaway_check())
        except Exception as error:  # pragma: no cover - shown by the assert below
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sum(len(r) for r in results) == 2
    assert RunawayOccurrence.objects.count() == 2
    assert sorted(h.type for h in heard) == ["usage.unusual", "usage.unusual"]
    assert len(mailoutbox) == 4  # owner and staff, for the org and for the key


# --- the API keys page -----------------------------------------------------------------------


def test_the_page_names_the_paused_key_and_an_owner_resumes_it(
    aged_org, owner, member, other_org, client, heard, django_capture_on_commit_callbacks
):
    key, _ = paused_setup(aged_org)
    check()
    client.force_login(owner)
    page = client.get("/billing/api-keys/").content.decode()
    assert f"({key.prefix}…) is paused" in page and "600 credits in an hour" in page and "Resume" in page
    other_key, _ = api_key_for(other_org, name="globex")
    assert client.post(f"/billing/api-keys/{other_key.prefix}/resume/").status_code == 404
    client.force_login(member)
    assert "Resume</button>" not in client.get("/billing/api-keys/").content.decode()
    client.post(f"/billing/api-keys/{key.prefix}/resume/")
    assert OrgAPIKey.objects.get(pk=key.pk).paused_at is not None  # members cannot
    client.force_login(owner)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(f"/billing/api-keys/{key.prefix}/resume/", follow=True)
    assert "is resumed" in response.content.decode()
    assert OrgAPIKey.objects.get(pk=key.pk).paused_at is None
    assert [h.type for h in heard if h.type == "usage.resumed"] == ["usage.resumed"]
    assert AuditEvent.objects.filter(action="api_key.resumed", data__prefix=key.prefix).exists()


def test_owners_turn_pause_on_runaway_on_and_off_from_the_page(aged_org, owner, member, client):
    client.force_login(member)
    client.post("/billing/api-keys/pause-on-runaway/", {"enabled": "1"})
    assert not Organization.objects.get(pk=aged_org.pk).pause_on_runaway
    client.force_login(owner)
    response = client.post("/billing/api-keys/pause-on-runaway/", {"enabled": "1"}, follow=True)
    assert "Pause on runaway is <strong>on</strong>" in response.content.decode()
    assert Organization.objects.get(pk=aged_org.pk).pause_on_runaway
    client.post("/billing/api-keys/pause-on-runaway/", {"enabled": "0"})
    assert not Organization.objects.get(pk=aged_org.pk).pause_on_runaway


# --- admin ----------------------------------------------------------------------------------


def test_staff_see_occurrences_and_resume_paused_keys_in_admin(aged_org, client, heard, django_capture_on_commit_callbacks):
    key, _ = paused_setup(aged_org)
    check()
    admin = UserFactory(email="admin@tollgate.test", is_staff=True, is_superuser=True)
    client.force_login(admin)
    assert key.prefix in client.get("/admin/usage/runawayoccurrence/").content.decode()
    assert key.prefix in client.get("/admin/usage/pausedapikey/").content.decode()
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/admin/usage/pausedapikey/", {"action": "resume", "_selected_action": [key.pk]})
    assert response.status_code == 302
    assert OrgAPIKey.objects.get(pk=key.pk).paused_at is None
    assert [h.type for h in heard if h.type == "usage.resumed"] == ["usage.resumed"]
    assert "Acme" in client.get("/admin/orgs/organization/?pause_on_runaway__exact=1").content.decode()


def test_the_baselines_and_the_last_hour_can_be_read_through_indexes(aged_org):
    """With sequential scans off, PostgreSQL reads each query through the index made for it."""
    key, _ = key_made(aged_org, NOW - timedelta(days=10))
    spend(aged_org, 3, NOW - timedelta(minutes=5), key)
    account_id = UsageEvent.objects.get(api_key_prefix=key.prefix).account_id
    with CaptureQueriesContext(connection) as queries:
        hourly_baseline(account_id=account_id, api_key_prefix=None, since=aged_org.created_at, now=NOW)
        hourly_baseline(account_id=account_id, api_key_prefix=key.prefix, since=key.created, now=NOW)
        spend_last_hour(now=NOW)
    plans = []
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        for query in queries.captured_queries:
            cursor.execute("EXPLAIN " + query["sql"])
            plans.append("\n".join(row[0] for row in cursor.fetchall()))
    assert "usage_event_account_created" in plans[0]
    assert "usage_event_key_created" in plans[1]
    for plan in plans[2:]:  # the last hour: an index on created_at (the BRIN, at production sizes)
        assert "Seq Scan on usage_usageevent" not in plan and "created_at >=" in plan


def test_beat_runs_the_check_every_five_minutes_as_a_task(aged_org, settings):
    assert settings.CELERY_BEAT_SCHEDULE["usage-runaway-check"] == {"task": "usage.runaway_check", "schedule": 300}
    key, _ = key_made(aged_org, NOW - timedelta(days=10))
    spend(aged_org, 700, NOW - timedelta(minutes=2), key)
    with time_machine.travel(NOW, tick=False):
        assert tasks.runaway_check() == 2
        assert tasks.runaway_check() == 0
