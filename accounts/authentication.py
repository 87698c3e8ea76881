"""API authentication: `Authorization: Bearer <org API key>`.

A valid key authenticates as its organization. Views read the caller's org as
`request.auth.org` and nothing else, which is what keeps org A out of org B.
"""

from __future__ import annotations

from rest_framework import authentication, permissions, throttling
from rest_framework.exceptions import AuthenticationFailed

from accounts import services as account_services
from accounts.models import OrgAPIKey, Scope
from billing_project import errors


class APIKeyPrincipal:
    """request.user for API calls: the key acting for its org, not a person."""

    is_authenticated = True
    is_anonymous = False
    is_staff = False

    def __init__(self, key: OrgAPIKey) -> None:
        self.key = key
        self.org = key.org
        self.pk = None

    def __str__(self) -> str:
        return f"API key {self.key.prefix}"


class APIKeyAuthentication(authentication.BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).decode("latin-1")
        if not header:
            return None
        keyword, _, secret = header.partition(" ")
        if keyword.lower() != self.keyword.lower() or not secret.strip():
            raise AuthenticationFailed("Send the key as `Authorization: Bearer <key>`.")
        try:
            check = account_services.api_key_authenticate(raw_key=secret.strip())
        except errors.AuthenticationFailed as error:
            # DRF's own class, so DRF answers 401 with the WWW-Authenticate header.
            raise AuthenticationFailed(error.message) from None
        key = check.key
        return APIKeyPrincipal(key), key

    def authenticate_header(self, request) -> str:
        # Makes DRF answer 401 (not 403) when the key is missing or wrong.
        return 'Bearer realm="tollgate"'


class HasScope(permissions.BasePermission):
    """Reads need the `read` scope; writes need the view's `write_scope`
    (`usage:write` unless the view says otherwise)."""

    message = "This API key lacks the scope this call needs."

    def has_permission(self, request, view) -> bool:
        key = request.auth
        if not isinstance(key, OrgAPIKey):
            return False
        if request.method in permissions.SAFE_METHODS:
            needed = getattr(view, "read_scope", Scope.READ)
        else:
            needed = getattr(view, "write_scope", Scope.USAGE_WRITE)
        if key.has_scope(needed):
            return True
        self.message = f"This API key lacks the `{needed}` scope."
        return False


_redis_clients: dict[int, object] = {}


def _redis_client(cache):
    """The Redis client behind Django's Redis cache, made once per process: the
    backend builds a new client object for every operation, which cost about
    0.3 ms of CPU per API call (profiled). None for other cache backends."""
    backend = getattr(cache, "_cache", None)
    if backend is None or not hasattr(backend, "get_client"):
        return None
    client = _redis_clients.get(id(backend))
    if client is None:
        # Writes always go to the first server, so one client serves every key.
        client = _redis_clients[id(backend)] = backend.get_client(write=True)
    return client


# INCR, and EXPIRE when the window's counter is new, as one script: one command
# on the wire (EVALSHA) and Redis runs it whole, so no other call slips between.
_COUNT_SCRIPT = """
local count = redis.call('INCR', KEYS[1])
if count == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
return count
"""
_count_scripts: dict[int, object] = {}


def _count_script(client):
    script = _count_scripts.get(id(client))
    if script is None:
        script = _count_scripts[id(client)] = client.register_script(_COUNT_SCRIPT)
    return script


class APIKeyRateThrottle(throttling.SimpleRateThrottle):
    """Requests per key (API_RATE_LIMIT, e.g. 6000/min); unauthenticated calls are
    refused before throttling, so they are counted per address.

    Counted per fixed window (a minute for "/min") with one counter per key and
    window, not DRF's sliding list of timestamps: the list is read, grown and
    written back whole on every request (its cost grows with the limit, and two
    processes writing it at once lose a request each), while a counter is one
    atomic INCR on Redis."""

    scope = "api_key"

    def get_cache_key(self, request, view):
        key = request.auth
        ident = key.prefix if isinstance(key, OrgAPIKey) else self.get_ident(request)
        return self.cache_format % {"scope": self.scope, "ident": ident}

    def allow_request(self, request, view) -> bool:
        if self.rate is None:
            return True
        key = self.get_cache_key(request, view)
        if key is None:
            return True
        now = self.timer()
        window = int(now // self.duration)
        self._wait = self.duration - (now - window * self.duration)
        return self._count(f"{key}:{window}") <= self.num_requests

    def _count(self, key: str) -> int:
        ttl = self.duration + 1
        client = _redis_client(self.cache)
        if client is not None:
            # One command, so one round trip, atomic across processes: the count,
            # and the window's expiry on its first call (_COUNT_SCRIPT).
            return int(_count_script(client)(keys=[self.cache.make_and_validate_key(key)], args=[ttl]))
        if self.cache.add(key, 1, ttl):
            return 1
        try:
            return self.cache.incr(key)
        except ValueError:  # expired between add and incr
            self.cache.add(key, 1, ttl)
            return 1

    def wait(self) -> float:
        return max(self._wait, 1)
