"""Which API key records usage, and whether the runaway breaker paused it.

A paused key's usage events (single, batch, captured with a hold) and holds
are refused with 402 `usage_paused` before anything is priced or locked. The
key as authenticated for this request carries `paused_at`, so the check costs
no query; a key paused while a request is in flight finishes that request."""

from __future__ import annotations

from accounts.models import OrgAPIKey
from usage.errors import UsagePaused


def api_key_prefix_of(actor) -> str | None:
    """The prefix of the API key acting, or None when a person or the system acts."""
    return actor.prefix if isinstance(actor, OrgAPIKey) else None


def key_require_unpaused(actor) -> None:
    """Refuse (402 usage_paused) when `actor` is a paused API key."""
    if isinstance(actor, OrgAPIKey) and actor.paused_at is not None:
        raise UsagePaused(prefix=actor.prefix, paused_at=actor.paused_at, reason=actor.paused_reason)
