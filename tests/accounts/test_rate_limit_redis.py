"""The API's per-key rate limit against real Redis (the tests' cache is in
memory): one command (a script) counts the call and sets the window's expiry."""

import uuid
from types import SimpleNamespace

import pytest
from django.core.cache.backends.redis import RedisCache

from accounts.authentication import APIKeyRateThrottle
from accounts.models import OrgAPIKey

REDIS = "redis://127.0.0.1:6379/15"


@pytest.fixture
def redis_cache():
    cache = RedisCache(REDIS, {})
    try:
        cache.get("ping")
    except Exception:  # noqa: BLE001 - no Redis on this machine
        pytest.skip("Redis is not running on 127.0.0.1:6379")
    return cache


def test_it_counts_each_call_once_and_refuses_past_the_limit(redis_cache, monkeypatch):
    monkeypatch.setattr(APIKeyRateThrottle, "THROTTLE_RATES", {"api_key": "3/min"})
    monkeypatch.setattr(APIKeyRateThrottle, "cache", redis_cache)
    key = SimpleNamespace(auth=OrgAPIKey(prefix=uuid.uuid4().hex[:8]))
    client = redis_cache._cache.get_client(write=True)
    calls = []
    original = type(client).execute_command
    monkeypatch.setattr(type(client), "execute_command", lambda self, *a, **kw: calls.append(a[0]) or original(self, *a, **kw))
    APIKeyRateThrottle().allow_request(SimpleNamespace(auth=OrgAPIKey(prefix=uuid.uuid4().hex[:8])), None)
    calls.clear()  # the script is loaded into Redis once, on its first use
    answers = [APIKeyRateThrottle().allow_request(key, None) for _ in range(4)]
    assert answers == [True, True, True, False]
    assert calls == ["EVALSHA"] * 4  # one command, one round trip, a call
    (counter,) = client.keys(redis_cache.make_and_validate_key(f"throttle_api_key_{key.auth.prefix}") + ":*")
    assert int(client.get(counter)) == 4
    assert 0 < client.ttl(counter) <= 61
    client.delete(counter)
