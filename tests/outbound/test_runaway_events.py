"""The runaway breaker's happenings reach the platform as signed events: one
`usage.unusual` per episode and tripped key or org, `usage.paused`, and
`usage.resumed` keyed by the episode it ends; a second check sends nothing new."""

from datetime import timedelta

import time_machine

from outbound.models import Event
from tests.factories import api_key_for
from tests.usage.conftest import rate_card  # noqa: F401 (fixture: the meters the spend uses)
from tests.usage.test_runaway import NOW, aged_org, check, client, paused_setup  # noqa: F401 (fixture)


def test_a_runaway_episode_is_told_to_the_platform_once(aged_org, django_capture_on_commit_callbacks):  # noqa: F811
    key, _ = paused_setup(aged_org)
    with django_capture_on_commit_callbacks(execute=True):
        check()
        assert check(NOW + timedelta(minutes=5)) == []

    events = {(e.type, e.payload["data"]["key_prefix"]) for e in Event.objects.filter(org=aged_org)}
    assert events == {("usage.unusual", None), ("usage.unusual", key.prefix), ("usage.paused", key.prefix)}
    paused = Event.objects.get(org=aged_org, type="usage.paused")
    assert paused.payload["data"]["reason"].startswith("It spent 600 credits in an hour")

    with time_machine.travel(NOW + timedelta(minutes=30), tick=False):
        _, admin_secret = api_key_for(aged_org, scopes=["billing:write"], name="ops")
        with django_capture_on_commit_callbacks(execute=True):
            assert client(admin_secret).post(f"/api/v1/api-keys/{key.prefix}/resume").status_code == 200
    resumed = Event.objects.get(org=aged_org, type="usage.resumed")
    assert resumed.key == paused.key  # the episode it ends
    assert resumed.payload["data"]["key_prefix"] == key.prefix
    assert resumed.sequence > paused.sequence
