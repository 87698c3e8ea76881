"""Fulfilment: a paid checkout becomes credits (packs and custom amounts) or a
plan, once per Checkout Session, and the demo's simulated payment."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from django.conf import settings
from django.db import transaction

from billing import gateway
from billing.errors import StripeNotConfigured, UnknownItem
from billing.money import format_money
from billing.models import (
    CheckoutKind,
    CheckoutStart,
    CheckoutStatus,
    Pack,
    Purchase,
    PurchaseKind,
)
from billing.services import subscriptions
from billing.services.checkout import billing_role_require
from billing.services.notices import purchase_receipt_send
from billing.services.promotions import promotion_label
from billing.services.state import lock_state, org_for_customer
from billing.stripe_data import CheckoutAmounts, checkout_amounts, metadata, stripe_id
from billing_project.errors import InvalidRequest
from orgs.models import Organization
from orgs.services import audit_record
from usage import services as usage_services
from usage.models import GrantSource
from usage.units import credits_str, format_credits

if TYPE_CHECKING:
    from orgs.services import Actor

logger = logging.getLogger(__name__)

# Where Stripe may send people back to: a fixed list of our pages, named by key.
RETURN_PAGES = {
    "overview": "/billing/",
    "top_up": "/billing/top-up/",
    "plans": "/billing/plans/",
    "invoices": "/billing/invoices/",
    "checkout": "/billing/checkout/",  # the old buy page; it redirects to top up
}


def _paid(list_cents: int, amounts: CheckoutAmounts | None) -> tuple[int, int, int | None]:
    """(paid before tax, discount, charged with tax) of a session: our price
    (never the payload's) less the discount Stripe applied to it."""
    if amounts is None:
        return list_cents, 0, None
    discount = min(amounts.discount_cents, list_cents)
    return list_cents - discount, discount, amounts.total_cents


def _bought_reason(what: str, *, paid_cents: int, discount_cents: int, promotion_code: str, currency: str,
                   simulated: bool) -> str:
    """The ledger's words for a purchase; a discounted one says what was paid and what the promotion took off."""
    reason = f"Bought {what}"
    if discount_cents:
        def money(cents: int) -> str:
            return format_money(cents, minor_units=True, currency_code=currency.upper())

        off = f"{money(discount_cents)} off" + (f" with {promotion_code}" if promotion_code else "")
        reason += f" for {money(paid_cents)} ({off})"
    return reason + (" (simulated)" if simulated else "")


def _purchase_fulfil(
    *, org: Organization, kind: str, pack: Pack | None, credits_micros: int, amount_cents: int, currency: str,
    what: str, checkout_session_id: str, payment_intent_id: str | None, simulated: bool, actor: Actor,
    amounts: CheckoutAmounts | None = None, promotion_code: str = "",
) -> Purchase:
    """Grant a paid checkout's credits once per session (the org's billing lock,
    then the session's unique Purchase and the ledger's idempotency key).

    The credits are always the item's (`credits_micros`); a promotion code
    lowers only the price, so the purchase records our price `amount_cents`
    less the discount Stripe applied (`amounts`): what was actually paid."""
    lock_state(org.pk)
    existing = Purchase.objects.filter(checkout_session_id=checkout_session_id).first()
    if existing is not None:
        return existing
    paid_cents, discount_cents, total_cents = _paid(amount_cents, amounts)
    entry = usage_services.credits_grant(
        org=org, amount_micros=credits_micros, source=GrantSource.PURCHASE,
        idempotency_key=f"checkout:{checkout_session_id}", stripe_object_id=payment_intent_id or checkout_session_id,
        reference=checkout_session_id, actor=actor,
        reason=_bought_reason(what, paid_cents=paid_cents, discount_cents=discount_cents,
                              promotion_code=promotion_code, currency=currency, simulated=simulated),
    )
    purchase = Purchase.objects.create(
        org=org, kind=kind, pack=pack, credits_micros=credits_micros, amount_cents=paid_cents,
        discount_cents=discount_cents, promotion_code=promotion_code, total_cents=total_cents,
        currency=currency, checkout_session_id=checkout_session_id, payment_intent_id=payment_intent_id or None,
        grant=entry.grant, simulated=simulated,
    )
    CheckoutStart.objects.filter(session_id=checkout_session_id).update(status=CheckoutStatus.COMPLETE)
    purchase_receipt_send(purchase, what=what)
    audit_record(org=org, action="billing.pack_purchased" if pack else "billing.credits_purchased", actor=actor,
                 data={"pack": pack.code if pack else None, "credits": credits_str(credits_micros),
                       "amount_cents": paid_cents, "session": checkout_session_id,
                       "payment_intent": payment_intent_id, "simulated": simulated,
                       **({"discount_cents": discount_cents, "promotion_code": promotion_code}
                          if discount_cents or promotion_code else {})})
    return purchase


@transaction.atomic
def pack_fulfil(
    *, org: Organization, pack: Pack, checkout_session_id: str, payment_intent_id: str | None = None,
    simulated: bool = False, actor: Actor = "stripe", amounts: CheckoutAmounts | None = None,
    promotion_code: str = "",
) -> Purchase:
    """Grant a paid pack's credits, as many as the catalog says, once per checkout
    session; `amounts` says what a promotion took off the catalog price."""
    return _purchase_fulfil(
        org=org, kind=PurchaseKind.PACK, pack=pack, credits_micros=pack.credits_micros, amount_cents=pack.amount_cents,
        currency=pack.currency, what=pack.name, checkout_session_id=checkout_session_id,
        payment_intent_id=payment_intent_id, simulated=simulated, actor=actor, amounts=amounts,
        promotion_code=promotion_code,
    )


@transaction.atomic
def credits_fulfil(
    *, start: CheckoutStart, payment_intent_id: str | None = None, simulated: bool = False, actor: Actor = "stripe",
    amounts: CheckoutAmounts | None = None, promotion_code: str = "",
) -> Purchase:
    """Grant a paid custom amount: exactly the credits recorded when its checkout
    started (never an amount from Stripe's payload or the client), once per session."""
    if start.kind != CheckoutKind.CREDITS or not start.credits_micros:
        raise InvalidRequest("Not a checkout for a custom amount of credits.", code="invalid_kind")
    return _purchase_fulfil(
        org=start.org, kind=PurchaseKind.CREDITS, pack=None, credits_micros=start.credits_micros,
        amount_cents=start.amount_cents, currency=settings.CURRENCY.lower(),
        what=f"{format_credits(start.credits_micros)} credits", checkout_session_id=start.session_id,
        payment_intent_id=payment_intent_id, simulated=simulated, actor=actor, amounts=amounts,
        promotion_code=promotion_code,
    )


# A promotion code that takes the whole price off completes the session with
# nothing to pay: the pack is bought all the same.
PAID = frozenset({"paid", "no_payment_required"})


def checkout_session_paid(*, session: dict, actor: Actor = "stripe") -> Purchase | None:
    """checkout.session.completed / async_payment_succeeded, with Stripe's latest session.

    A pack is granted only once the session says paid (or, with a promotion
    code that took the whole price off, that nothing was to pay); a delayed
    payment method (bank debit) completes unpaid and is granted on async
    success. What was paid is our price less the session's discount. A
    plan's subscription is applied from Stripe's current subscription.
    """
    session_id = session["id"]
    start = CheckoutStart.objects.select_related("org", "pack", "plan_price__plan").filter(session_id=session_id).first()
    meta = metadata(session)
    org = start.org if start else org_for_customer(stripe_id(session.get("customer")), meta)
    if org is None:
        logger.warning("Checkout session %s belongs to no organization we know; ignored.", session_id)
        return None
    if session.get("mode") == "subscription":
        sub_id = stripe_id(session.get("subscription"))
        if sub_id:
            subscriptions.subscription_refresh(subscription_id=sub_id, customer_id=stripe_id(session.get("customer")),
                                       metadata=meta, actor=actor)
        CheckoutStart.objects.filter(session_id=session_id).update(status=CheckoutStatus.COMPLETE)
        return None
    if session.get("payment_status") not in PAID:
        return None  # wait for checkout.session.async_payment_succeeded
    amounts = checkout_amounts(session)
    code = promotion_label(amounts.promotions) if amounts.promotions else ""
    if start is not None and start.kind == CheckoutKind.CREDITS:
        return credits_fulfil(start=start, payment_intent_id=stripe_id(session.get("payment_intent")) or None,
                              actor=actor, amounts=amounts, promotion_code=code)
    if meta.get("tollgate_kind") == CheckoutKind.CREDITS:
        # A custom amount is only ever granted from our record of it.
        logger.warning("Checkout session %s is a custom amount we have no record of; ignored.", session_id)
        return None
    pack = start.pack if start else Pack.objects.filter(code=meta.get("tollgate_item", "")).first()
    if pack is None:
        logger.warning("Checkout session %s sold nothing from our catalog; ignored.", session_id)
        return None
    return pack_fulfil(org=org, pack=pack, checkout_session_id=session_id,
                       payment_intent_id=stripe_id(session.get("payment_intent")) or None, actor=actor,
                       amounts=amounts, promotion_code=code)


def checkout_session_closed(*, session: dict, status: str) -> None:
    CheckoutStart.objects.filter(session_id=session["id"], status=CheckoutStatus.OPEN).update(status=status)


def checkout_simulate_pay(*, org: Organization, session_id: str, actor: Actor = None) -> CheckoutStart:
    """The embedded demo's "pay": runs the very fulfilment the webhook runs. No money moves."""
    if not gateway.simulated():
        raise StripeNotConfigured("Simulated payments are only available in the embedded demo without Stripe keys.",
                                  code="simulation_disabled")
    billing_role_require(org, actor, "buy credits or change the plan")
    with transaction.atomic():
        lock_state(org.pk)  # a double click waits here, then finds the checkout complete
        start = CheckoutStart.objects.select_related("pack", "plan_price__plan").filter(
            org=org, session_id=session_id, simulated=True
        ).first()
        if start is None:
            raise UnknownItem("No such simulated checkout.", code="checkout_not_found")
        if start.kind == CheckoutKind.PACK:
            pack_fulfil(org=org, pack=start.pack, checkout_session_id=session_id, simulated=True, actor=actor)
        elif start.kind == CheckoutKind.CREDITS:
            credits_fulfil(start=start, simulated=True, actor=actor)
        elif start.status == CheckoutStatus.OPEN:
            subscriptions.plan_simulate_subscribe(org=org, plan_price=start.plan_price, actor=actor)
            CheckoutStart.objects.filter(pk=start.pk).update(status=CheckoutStatus.COMPLETE)
        start.refresh_from_db()
    return start
