import pytest
import time_machine
from django.utils import timezone

from billing_project.celery import app
from billing_project.tasks import health_ping


@pytest.fixture(autouse=True)
def _clear_cache():
    from django.core.cache import cache

    cache.clear()
    yield
    cache.clear()


@pytest.mark.django_db
def test_healthz_reports_the_worker_missing_until_a_heartbeat(client):
    body = client.get("/healthz").json()
    assert body == {"database": "ok", "worker": {"last_heartbeat": None, "age_seconds": None, "ok": False}}


@pytest.mark.django_db
def test_the_health_task_leaves_a_heartbeat_that_goes_stale(client):
    health_ping.delay()
    assert client.get("/healthz").json()["worker"]["ok"] is True
    with time_machine.travel(timezone.now() + timezone.timedelta(minutes=5)):
        assert client.get("/healthz").json()["worker"]["ok"] is False


def test_beat_schedules_the_health_task():
    schedule = app.conf.beat_schedule
    assert schedule["health-ping"]["task"] == health_ping.name
    assert health_ping.name in app.tasks
