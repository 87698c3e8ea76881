"""The messages billing's services send about one occurrence each: the key
names the occurrence, so a webhook and a task that both see it tell people once."""

from __future__ import annotations

from billing.models import BillingState, Purchase
from billing.money import format_money
from billing.notifications import LINKS
from orgs.notifications import notification_send
from usage.units import format_credits


def purchase_receipt_send(purchase: Purchase, *, what: str) -> None:
    """A receipt for credits bought in Tollgate (a pack, a custom amount, an auto top-up):
    the amount actually paid, and what a promotion code took off the list price."""

    def money(cents: int) -> str:
        return format_money(cents, minor_units=True, currency_code=purchase.currency.upper())

    notification_send("purchase_receipt", org=purchase.org, key=f"purchase:{purchase.pk}", context={
        "what": what, "credits": format_credits(purchase.credits_micros), "amount": money(purchase.amount_cents),
        "discount": money(purchase.discount_cents) if purchase.discount_cents else "",
        "list_amount": money(purchase.list_amount_cents), "promotion_code": purchase.promotion_code,
        "purchased_at": purchase.created_at, "simulated": purchase.simulated, "link": LINKS["purchase_receipt"],
    })


def payment_failed_send(state: BillingState) -> None:
    """The renewal payment failed and a grace period started: once per grace period."""
    notification_send("payment_failed", org=state.org, key=f"grace:{state.grace_ends_at.isoformat()}", context={
        "plan_name": state.plan_code.title(), "grace_ends_at": state.grace_ends_at, "link": LINKS["payment_failed"],
    })
