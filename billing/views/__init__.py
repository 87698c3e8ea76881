"""Billing pages. `pages` shows credits (overview, usage), `send` sends them; `payments`
is buying (top up, plans, invoices, checkout, portal, return pages);
`settings` holds auto top-up, alerts and provider keys; `members` is the
members page with each member's spend and cap."""

from billing.views.members import member_limit, members
from billing.views.pages import overview, run_receipt, run_receipt_export, usage, usage_export
from billing.views.send import send, send_confirm
from billing.views.payments import (
    checkout_canceled,
    checkout_done,
    checkout_page,
    checkout_start,
    checkout_status,
    invoices,
    plan_cancel,
    plan_change,
    plans,
    portal,
    simulate,
    top_up,
)
from billing.views.settings import (
    alerts,
    auto_topup,
    card_change,
    member_usage,
    provider_key_revoke,
    provider_keys,
    settings_home,
)

__all__ = [
    "overview", "send", "send_confirm", "usage", "usage_export", "run_receipt", "run_receipt_export",
    "checkout_canceled", "checkout_done", "checkout_page", "checkout_start", "checkout_status", "invoices",
    "plan_cancel", "plan_change", "plans", "portal", "simulate", "top_up",
    "member_limit", "members",
    "alerts", "auto_topup", "card_change", "member_usage", "provider_key_revoke", "provider_keys", "settings_home",
]
