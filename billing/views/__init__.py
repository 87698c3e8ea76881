"""Billing pages. `pages` shows credits (overview, usage history, sending);
`payments` is the server side of buying (checkout, portal, return pages)."""

from billing.views.pages import overview, send, usage, usage_export
from billing.views.payments import (
    checkout_canceled,
    checkout_done,
    checkout_page,
    checkout_start,
    portal,
    simulate,
)

__all__ = [
    "overview", "send", "usage", "usage_export",
    "checkout_canceled", "checkout_done", "checkout_page", "checkout_start", "portal", "simulate",
]
