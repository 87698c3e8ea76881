"""The REST API's per-key rate limit, counted for MCP calls too: one budget per key."""

from __future__ import annotations

from types import SimpleNamespace

from accounts.authentication import APIKeyRateThrottle
from accounts.services import ApiKeyCheck
from billing_project.errors import TollgateError


class RateLimited(TollgateError):
    status = 429
    type = "rate_limited"
    code = "rate_limited"
    default_message = "Too many requests for this API key; slow down."


def throttle_hit(check: ApiKeyCheck) -> None:
    """Count one request of `check.key` in the same counter the DRF API uses
    (accounts.authentication.APIKeyRateThrottle); RateLimited when over it."""
    throttle = APIKeyRateThrottle()
    if not throttle.allow_request(SimpleNamespace(auth=check.key), None):
        wait = int(throttle.wait())
        raise RateLimited(f"Too many requests for this API key; try again in {wait} s.", retry_after=wait)
