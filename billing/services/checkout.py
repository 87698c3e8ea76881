"""Stripe Checkout for plans and packs, the customer portal, and fulfilment.

Checkout sessions are made on the server: the item, price and return URLs
come from our catalog and a fixed list of pages, never from the client.
Fulfilment (the webhook, or the demo's simulated payment) grants what the
catalog says the pack holds, once per session, and only once paid.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING

import stripe
from django.conf import settings
from django.db import transaction
from django.urls import reverse

from accounts.models import User
from billing import gateway
from billing.errors import InvalidReturnTo, StripeNotConfigured, UnknownItem
from billing.models import (
    BillingStatus,
    CheckoutKind,
    CheckoutStart,
    CheckoutStatus,
    Interval,
    OveragePrice,
    Pack,
    PlanPrice,
    Purchase,
    PurchaseKind,
)
from billing.services import plans
from billing.services.state import customer_for_org, lock_state, org_for_customer
from billing.stripe_data import metadata, stripe_id
from billing_project.errors import Conflict, InvalidRequest
from orgs.models import MANAGE_BILLING, Organization
from orgs.services import audit_record, role_require
from usage import services as ledger
from usage.models import GrantSource
from usage.units import credits_str

if TYPE_CHECKING:
    from orgs.services import Actor

logger = logging.getLogger(__name__)

# Where Stripe may send people back to: a fixed list of our pages, named by key.
RETURN_PAGES = {
    "overview": "/billing/",
    "top_up": "/billing/top-up/",
    "plans": "/billing/plans/",
    "checkout": "/billing/checkout/",
}


def return_path(key: str | None) -> str:
    key = key or "overview"
    if key not in RETURN_PAGES:
        raise InvalidReturnTo(
            f"return_to must be one of: {', '.join(RETURN_PAGES)}.", fields={"return_to": ["Unknown page."]}
        )
    return RETURN_PAGES[key]


def _check_actor(org: Organization, actor: Actor, action: str) -> None:
    # API keys are checked by scope (billing:write) before they get here.
    if isinstance(actor, User):
        role_require(org=org, user=actor, roles=MANAGE_BILLING, action=action)


@dataclass(frozen=True)
class CheckoutItem:
    kind: str
    plan_price: PlanPrice | None = None
    pack: Pack | None = None

    @property
    def code(self) -> str:
        return self.pack.code if self.pack else self.plan_price.plan.code

    @property
    def stripe_price_id(self) -> str:
        return (self.pack or self.plan_price).stripe_price_id


def checkout_item(*, kind: str, code: str, interval: str = Interval.MONTH) -> CheckoutItem:
    if kind == CheckoutKind.PACK:
        pack = Pack.objects.filter(code=code, active=True).first()
        if pack is None:
            raise UnknownItem(f"No credit pack “{code}”.")
        return CheckoutItem(kind=kind, pack=pack)
    if kind == CheckoutKind.PLAN:
        if interval not in Interval.values:
            raise InvalidRequest("interval must be month or year.", code="invalid_interval")
        price = (
            PlanPrice.objects.select_related("plan")
            .filter(plan__code=code, plan__active=True, interval=interval, active=True)
            .first()
        )
        if price is None:
            raise UnknownItem(f"No plan “{code}” billed by the {interval}.")
        if price.amount_cents == 0:
            raise InvalidRequest(
                "The Free plan needs no checkout: cancel your subscription in the billing portal instead.",
                code="free_plan",
            )
        return CheckoutItem(kind=kind, plan_price=price)
    raise InvalidRequest("kind must be plan or pack.", code="invalid_kind")


@dataclass(frozen=True)
class CheckoutResult:
    url: str
    session_id: str
    simulated: bool


def checkout_start(
    *, org: Organization, kind: str, code: str, interval: str = Interval.MONTH, return_to: str = "overview",
    actor: Actor = None,
) -> CheckoutResult:
    """Open a Stripe Checkout Session for a plan (subscription) or a pack (payment)."""
    _check_actor(org, actor, "buy credits or change the plan")
    item = checkout_item(kind=kind, code=code, interval=interval)
    back = return_path(return_to)
    state = plans.billing_state_for(org)
    if item.kind == CheckoutKind.PLAN and state.subscription_id and state.status != BillingStatus.FREE:
        raise Conflict(
            "This organization already has a subscription: change or cancel it in the billing portal.",
            code="already_subscribed",
        )
    if gateway.simulated():
        return _simulated_start(org, item, return_to, actor)
    gateway.api_key()
    if not item.stripe_price_id:
        raise StripeNotConfigured(
            "The catalog is not in Stripe yet: an operator needs to run `manage.py sync_catalog`.",
            code="catalog_not_synced",
        )
    customer = customer_for_org(org=org, actor=actor)
    meta = {"tollgate_org_id": str(org.pk), "tollgate_kind": item.kind, "tollgate_item": item.code}
    query = f"return_to={return_to or 'overview'}"
    params = {
        "customer": customer.id,
        "client_reference_id": str(org.pk),
        "line_items": [{"price": item.stripe_price_id, "quantity": 1}],
        "automatic_tax": {"enabled": True},
        "tax_id_collection": {"enabled": True},
        # Tax needs the customer's address; Checkout collects it onto the customer.
        "customer_update": {"address": "auto", "name": "auto"},
        "success_url": settings.SITE_URL + reverse("billing:checkout_done") + "?session_id={CHECKOUT_SESSION_ID}&" + query,
        "cancel_url": settings.SITE_URL + reverse("billing:checkout_canceled") + "?" + query,
        "metadata": meta,
    }
    if item.kind == CheckoutKind.PACK:
        params.update(
            mode="payment",
            invoice_creation={"enabled": True},  # a receipt and invoice PDF for every pack
            # Keep the card for auto top-ups, which charge it off-session.
            payment_intent_data={"metadata": meta, "setup_future_usage": "off_session"},
        )
    else:
        params.update(mode="subscription", subscription_data={"metadata": meta})
        overage = OveragePrice.objects.filter(interval=item.plan_price.interval).exclude(stripe_price_id="").first()
        if item.plan_price.plan.overage_allowed and overage is not None:
            params["line_items"].append({"price": overage.stripe_price_id})  # metered: no quantity
    with gateway.translated_errors("start the checkout"):
        session = stripe.checkout.Session.create(**params, **gateway.options())
    # Stripe was called outside any transaction (nothing to roll back there);
    # the record of what the session sells and its audit row commit together.
    with transaction.atomic():
        CheckoutStart.objects.create(
            org=org, session_id=session["id"], kind=item.kind, plan_price=item.plan_price, pack=item.pack,
            return_to=return_to or "overview", created_by=actor if isinstance(actor, User) else None,
        )
        audit_record(org=org, action="billing.checkout_started", actor=actor,
                     data={"kind": item.kind, "item": item.code, "session": session["id"], "return_to": back})
    return CheckoutResult(url=session["url"], session_id=session["id"], simulated=False)


@transaction.atomic
def _simulated_start(org: Organization, item: CheckoutItem, return_to: str, actor: Actor) -> CheckoutResult:
    session_id = f"sim_cs_{uuid.uuid4().hex}"
    CheckoutStart.objects.create(
        org=org, session_id=session_id, kind=item.kind, plan_price=item.plan_price, pack=item.pack,
        return_to=return_to or "overview", simulated=True, created_by=actor if isinstance(actor, User) else None,
    )
    audit_record(org=org, action="billing.checkout_started", actor=actor,
                 data={"kind": item.kind, "item": item.code, "session": session_id, "simulated": True})
    return CheckoutResult(url=reverse("billing:simulate", args=[session_id]), session_id=session_id, simulated=True)


def portal_start(*, org: Organization, return_to: str = "overview", actor: Actor = None) -> str:
    """A Stripe customer portal session URL: payment methods, plan changes, cancellation, invoices."""
    _check_actor(org, actor, "manage billing")
    back = return_path(return_to)
    if not gateway.configured():
        raise StripeNotConfigured("The billing portal needs Stripe, which is not configured on this Tollgate.")
    customer = customer_for_org(org=org, actor=actor)
    params = {"customer": customer.id, "return_url": settings.SITE_URL + back}
    if settings.STRIPE_PORTAL_CONFIGURATION:
        params["configuration"] = settings.STRIPE_PORTAL_CONFIGURATION
    with gateway.translated_errors("open the billing portal"):
        session = stripe.billing_portal.Session.create(**params, **gateway.options())
    audit_record(org=org, action="billing.portal_opened", actor=actor, data={"customer": customer.id})
    return session["url"]


# --- fulfilment ------------------------------------------------------------


@transaction.atomic
def pack_fulfil(
    *, org: Organization, pack: Pack, checkout_session_id: str, payment_intent_id: str | None = None,
    simulated: bool = False, actor: Actor = "stripe",
) -> Purchase:
    """Grant a paid pack's credits, as many as the catalog says, once per checkout session."""
    lock_state(org.pk)
    existing = Purchase.objects.filter(checkout_session_id=checkout_session_id).first()
    if existing is not None:
        return existing
    entry = ledger.credits_grant(
        org=org, amount_micros=pack.credits_micros, source=GrantSource.PURCHASE,
        idempotency_key=f"checkout:{checkout_session_id}", stripe_object_id=payment_intent_id or checkout_session_id,
        reference=checkout_session_id, reason=f"Bought {pack.name}" + (" (simulated)" if simulated else ""),
        actor=actor,
    )
    purchase = Purchase.objects.create(
        org=org, kind=PurchaseKind.PACK, pack=pack, credits_micros=pack.credits_micros, amount_cents=pack.amount_cents,
        currency=pack.currency, checkout_session_id=checkout_session_id, payment_intent_id=payment_intent_id or None,
        grant=entry.grant, simulated=simulated,
    )
    CheckoutStart.objects.filter(session_id=checkout_session_id).update(status=CheckoutStatus.COMPLETE)
    audit_record(org=org, action="billing.pack_purchased", actor=actor,
                 data={"pack": pack.code, "credits": credits_str(pack.credits_micros), "session": checkout_session_id,
                       "payment_intent": payment_intent_id, "simulated": simulated})
    return purchase


def checkout_session_paid(*, session: dict, actor: Actor = "stripe") -> Purchase | None:
    """checkout.session.completed / async_payment_succeeded, with Stripe's latest session.

    A pack is granted only once the session says paid; a delayed payment
    method (bank debit) completes unpaid and is granted on async success. A
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
            plans.subscription_refresh(subscription_id=sub_id, customer_id=stripe_id(session.get("customer")),
                                       metadata=meta, actor=actor)
        CheckoutStart.objects.filter(session_id=session_id).update(status=CheckoutStatus.COMPLETE)
        return None
    if session.get("payment_status") != "paid":
        return None  # wait for checkout.session.async_payment_succeeded
    pack = start.pack if start else Pack.objects.filter(code=meta.get("tollgate_item", "")).first()
    if pack is None:
        logger.warning("Checkout session %s sold nothing from our catalog; ignored.", session_id)
        return None
    return pack_fulfil(org=org, pack=pack, checkout_session_id=session_id,
                       payment_intent_id=stripe_id(session.get("payment_intent")) or None, actor=actor)


def checkout_session_closed(*, session: dict, status: str) -> None:
    CheckoutStart.objects.filter(session_id=session["id"], status=CheckoutStatus.OPEN).update(status=status)


def checkout_simulate_pay(*, org: Organization, session_id: str, actor: Actor = None) -> CheckoutStart:
    """The embedded demo's "pay": runs the very fulfilment the webhook runs. No money moves."""
    if not gateway.simulated():
        raise StripeNotConfigured("Simulated payments are only available in the embedded demo without Stripe keys.",
                                  code="simulation_disabled")
    _check_actor(org, actor, "buy credits or change the plan")
    with transaction.atomic():
        lock_state(org.pk)  # a double click waits here, then finds the checkout complete
        start = CheckoutStart.objects.select_related("pack", "plan_price__plan").filter(
            org=org, session_id=session_id, simulated=True
        ).first()
        if start is None:
            raise UnknownItem("No such simulated checkout.", code="checkout_not_found")
        if start.kind == CheckoutKind.PACK:
            pack_fulfil(org=org, pack=start.pack, checkout_session_id=session_id, simulated=True, actor=actor)
        elif start.status == CheckoutStatus.OPEN:
            plans.plan_simulate_subscribe(org=org, plan_price=start.plan_price, actor=actor)
            CheckoutStart.objects.filter(pk=start.pk).update(status=CheckoutStatus.COMPLETE)
        start.refresh_from_db()
    return start
