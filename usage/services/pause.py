"""Which API key records usage, whether the runaway breaker paused it, and the
rules it carries (a monthly limit, the meters it may record); and whether
staff paused the organization's usage.

A paused key's usage events (single, batch, captured with a hold) and holds
are refused with 402 `usage_paused` before anything is priced or locked. The
key as authenticated for this request carries `paused_at`, so the check costs
no query; a key paused while a request is in flight finishes that request."""

from __future__ import annotations

from accounts.models import OrgAPIKey
from usage.errors import MeterNotAllowed, OrgUsagePaused, UsagePaused


def api_key_prefix_of(actor) -> str | None:
    """The prefix of the API key acting, or None when a person or the system acts."""
    return actor.prefix if isinstance(actor, OrgAPIKey) else None


def key_require_unpaused(actor, org=None) -> None:
    """Refuse (402 usage_paused) when `actor` is a paused API key, or when staff
    paused `org`'s usage (`Organization.usage_paused_at`, on the row the caller
    already holds: no query)."""
    if org is not None and org.usage_paused_at is not None:
        raise OrgUsagePaused(paused_at=org.usage_paused_at)
    if isinstance(actor, OrgAPIKey) and actor.paused_at is not None:
        raise UsagePaused(prefix=actor.prefix, paused_at=actor.paused_at, reason=actor.paused_reason)


def key_limited(actor) -> bool:
    """Whether `actor` is an API key carrying a monthly credit limit (as authenticated
    for this request: a limit set while a request is in flight applies from the next)."""
    return isinstance(actor, OrgAPIKey) and actor.monthly_limit_micros is not None


def key_require_meter(actor, meter: str) -> None:
    """Refuse (403 meter_not_allowed) a meter outside the acting API key's list;
    an empty list allows every meter."""
    if isinstance(actor, OrgAPIKey) and actor.meters and meter not in actor.meters:
        raise MeterNotAllowed(prefix=actor.prefix, meter=meter, allowed=actor.meters)
