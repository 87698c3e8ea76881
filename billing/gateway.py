"""The one door to Stripe's API: keys, API version and error translation.

Every call passes its key and API version explicitly (no module-level
`stripe.api_key`), so a deployment without keys never reaches Stripe and
tests can set keys per test. Without STRIPE_SECRET_KEY, `options()` raises
StripeNotConfigured, which pages and the API show as "Stripe is not
configured" (503), never a crash.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import stripe
from django.conf import settings
from djstripe.exceptions import InvalidStripeAPIKey
from djstripe.models.api import get_api_key_details_by_prefix
from djstripe.settings import djstripe_settings

from billing.errors import PaymentProviderError, StripeNotConfigured

logger = logging.getLogger(__name__)


def configured() -> bool:
    return bool(settings.STRIPE_SECRET_KEY)


def livemode() -> bool | None:
    """Whether the secret key is a live one (`sk_live_`, `rk_live_`) or a test
    one; None without a key of a known form."""
    if not configured():
        return None
    try:
        return get_api_key_details_by_prefix(settings.STRIPE_SECRET_KEY)[1]
    except InvalidStripeAPIKey:
        return None


def simulated() -> bool:
    """The embedded demo's stand-in for Stripe: only ever without real keys."""
    return not configured() and settings.BILLING_SIMULATED_PAYMENTS


def api_key() -> str:
    if not configured():
        raise StripeNotConfigured()
    return settings.STRIPE_SECRET_KEY


def options(**extra: Any) -> dict[str, Any]:
    """Request options for a stripe-python call: key, pinned API version, extras
    such as `idempotency_key`."""
    return {"api_key": api_key(), "stripe_version": djstripe_settings.STRIPE_API_VERSION, **extra}


def to_dict(obj: Any) -> dict:
    """A stripe-python object as plain JSON data, as Stripe sent it (what
    dj-stripe stores): decimal fields stay strings, never floats."""
    if isinstance(obj, dict):
        return obj
    return obj.to_dict(for_json=True)


@contextmanager
def translated_errors(action: str) -> Iterator[None]:
    """Turn Stripe's exceptions into a 502 envelope with Stripe's message for people."""
    try:
        yield
    except stripe.StripeError as exc:
        logger.warning("Stripe refused to %s: %s", action, exc)
        message = getattr(exc, "user_message", None) or f"Stripe could not {action}. Try again in a moment."
        raise PaymentProviderError(message) from exc

