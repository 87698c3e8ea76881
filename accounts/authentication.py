"""API authentication: `Authorization: Bearer <org API key>`.

A valid key authenticates as its organization. Views read the caller's org as
`request.auth.org` and nothing else, which is what keeps org A out of org B.
"""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone
from rest_framework import authentication, permissions, throttling
from rest_framework.exceptions import AuthenticationFailed

from accounts.models import OrgAPIKey, Scope

# Writing last_used_at on every call would turn each read into a write; a
# minute's precision is enough to tell a live key from a forgotten one.
LAST_USED_PRECISION = timedelta(seconds=60)


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
        secret = secret.strip()
        prefix, dot, _ = secret.partition(".")
        if not dot:
            raise AuthenticationFailed("That API key is not valid.")
        key = OrgAPIKey.objects.select_related("org").filter(prefix=prefix).first()
        if key is None or not key.is_valid(secret):
            raise AuthenticationFailed("That API key is not valid.")
        if key.revoked:
            raise AuthenticationFailed("That API key has been revoked.")
        if key.has_expired:
            raise AuthenticationFailed("That API key has expired.")
        now = timezone.now()
        if key.last_used_at is None or now - key.last_used_at > LAST_USED_PRECISION:
            OrgAPIKey.objects.filter(pk=key.pk).update(last_used_at=now)
            key.last_used_at = now
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


class APIKeyRateThrottle(throttling.SimpleRateThrottle):
    """Requests per key (API_RATE_LIMIT, e.g. 6000/min); unauthenticated calls are
    refused before throttling, so they are counted per address."""

    scope = "api_key"

    def get_cache_key(self, request, view):
        key = request.auth
        ident = key.prefix if isinstance(key, OrgAPIKey) else self.get_ident(request)
        return self.cache_format % {"scope": self.scope, "ident": ident}
