"""API authentication with a spending token: `Authorization: Bearer tgs_...`.

A spending token (usage.services.tokens) may do one thing: record usage
events against its hold. Its authentication comes first in the API's list
(settings.REST_FRAMEWORK) so that every view sees a token, and refuses it
unless the view says it takes one (`spending_tokens = True`): any other call
is 403 `token_not_allowed`. Anything that is not a token is left to the API
key authentication after it (accounts.authentication).

On the views that take tokens, `request.auth` is the SpendingToken and
`request.user` a SpendingTokenPrincipal; `request.auth.org` is the caller's
organization either way.
"""

from __future__ import annotations

from rest_framework import authentication

from accounts.authentication import APIKeyRateThrottle, HasScope
from usage.errors import TokenNotAllowed
from usage.models import TOKEN_PREFIX, SpendingToken
from usage.services import TokenCheck, spending_token_authenticate


class SpendingTokenPrincipal:
    """request.user for a token's calls: the token acting for its hold, not a person."""

    is_authenticated = True
    is_anonymous = False
    is_staff = False

    def __init__(self, check: TokenCheck) -> None:
        self.token = check.token
        self.org = check.org
        self.api_key = check.api_key
        self.pk = None

    def __str__(self) -> str:
        return f"Spending token {self.token.prefix}"


def _bearer(request) -> str | None:
    header = authentication.get_authorization_header(request).decode("latin-1")
    keyword, _, secret = header.partition(" ")
    if keyword.lower() != "bearer":
        return None
    return secret.strip()


class SpendingTokenAuthentication(authentication.BaseAuthentication):
    def authenticate(self, request):
        secret = _bearer(request)
        if not secret or not secret.startswith(TOKEN_PREFIX):
            return None  # an API key, or nothing: the next class decides
        # Checked first, so a dead token is told it is dead (401) wherever it is sent.
        check = spending_token_authenticate(raw_token=secret)
        view = (request.parser_context or {}).get("view")
        if not getattr(view, "spending_tokens", False):
            raise TokenNotAllowed(check.token.prefix)
        return SpendingTokenPrincipal(check), check.token

    def authenticate_header(self, request) -> str:
        return 'Bearer realm="tollgate"'


class HasScopeOrToken(HasScope):
    """For the views that take spending tokens: a token passed its authentication
    on such a view already (it can do only this one thing); a key needs its scope."""

    def has_permission(self, request, view) -> bool:
        if isinstance(request.auth, SpendingToken):
            return True
        return super().has_permission(request, view)


class TokenRateThrottle(APIKeyRateThrottle):
    """Rate limits as for API keys: a token's calls count against the key that
    issued it (one window counter), so tokens never multiply a key's rate."""

    def get_cache_key(self, request, view):
        token = request.auth
        if isinstance(token, SpendingToken):
            ident = token.api_key.prefix if token.api_key is not None else token.prefix
            return self.cache_format % {"scope": self.scope, "ident": ident}
        return super().get_cache_key(request, view)


class AcceptsSpendingTokens:
    """Mixed into the views that take spending tokens (usage.api): recording usage events."""

    spending_tokens = True
    permission_classes = [HasScopeOrToken]
    throttle_classes = [TokenRateThrottle]
