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
from datetime import timedelta
from typing import TYPE_CHECKING

import stripe
from django.conf import settings
from django.db import transaction
from django.urls import reverse
from django.utils import timezone
from djstripe import models as djstripe_models

from accounts.models import User
from billing import gateway
from billing.errors import InvalidReturnTo, StripeNotConfigured, UnknownItem
from billing.money import credits_price_cents
from billing.selectors import plan_price_for
from billing.models import (
    BillingStatus,
    CheckoutKind,
    CheckoutStart,
    Interval,
    OveragePrice,
    Pack,
    PlanPrice,
)
from billing.services import plans, subscriptions
from billing.services.state import customer_for_org
from billing.stripe_data import price_facts
from billing_project import request_context
from billing_project.errors import Conflict, InvalidRequest
from orgs.models import MANAGE_BILLING, Organization
from orgs.services import audit_record, role_require
from usage.units import MICROS_PER_CREDIT, credits_str, credits_to_micros, format_credits

if TYPE_CHECKING:
    from orgs.services import Actor

logger = logging.getLogger(__name__)

# Where Stripe may send people back to: a fixed list of our pages, named by key.
RETURN_PAGES = {
    "overview": "/billing/",
    "top_up": "/billing/top-up/",
    "plans": "/billing/plans/",
    "invoices": "/billing/invoices/",
    "auto_topup": "/billing/settings/auto-top-up/",
    "checkout": "/billing/checkout/",  # the old buy page; it redirects to top up
}


def return_path(key: str | None) -> str:
    key = key or "overview"
    if key not in RETURN_PAGES:
        raise InvalidReturnTo(
            f"return_to must be one of: {', '.join(RETURN_PAGES)}.", fields={"return_to": ["Unknown page."]}
        )
    return RETURN_PAGES[key]


def billing_role_require(org: Organization, actor: Actor, action: str) -> None:
    """A person must be an owner, admin or billing manager to `action`."""
    # API keys are checked by scope (billing:write) before they get here.
    if isinstance(actor, User):
        role_require(org=org, user=actor, roles=MANAGE_BILLING, action=action)


@dataclass(frozen=True)
class CustomAmountLimits:
    min_micros: int
    max_micros: int


def custom_amount_limits() -> CustomAmountLimits:
    """The smallest and largest custom top-up, in whole credits (TOPUP_MIN_CREDITS, TOPUP_MAX_CREDITS)."""
    return CustomAmountLimits(credits_to_micros(settings.TOPUP_MIN_CREDITS), credits_to_micros(settings.TOPUP_MAX_CREDITS))


def custom_amount_price(credits_micros: int) -> int:
    """The price in cents of a custom amount of credits, checked against the limits.

    Whole credits only, at the list price of a credit (usage.units.credit_price,
    rounded half up to the cent once). Refusals say what would be accepted."""
    limits = custom_amount_limits()
    if not isinstance(credits_micros, int) or isinstance(credits_micros, bool):
        raise InvalidRequest("credits must be a whole number of credits.", code="invalid_amount")
    if credits_micros % MICROS_PER_CREDIT:
        raise InvalidRequest("Buy a whole number of credits, such as 1500.", code="invalid_amount",
                             fields={"credits": ["Enter a whole number of credits."]})
    if not limits.min_micros <= credits_micros <= limits.max_micros:
        message = (f"Buy between {format_credits(limits.min_micros)} and {format_credits(limits.max_micros)} credits "
                   "at a time.")
        raise InvalidRequest(message, code="amount_out_of_range", fields={"credits": [message]})
    return credits_price_cents(credits_micros)


@dataclass(frozen=True)
class CheckoutItem:
    kind: str
    plan_price: PlanPrice | None = None
    pack: Pack | None = None
    credits_micros: int | None = None
    amount_cents: int | None = None

    @property
    def code(self) -> str:
        if self.kind == CheckoutKind.CREDITS:
            return "credits"
        return self.pack.code if self.pack else self.plan_price.plan.code

    @property
    def stripe_price_id(self) -> str:
        return (self.pack or self.plan_price).stripe_price_id


def checkout_item(
    *, kind: str, code: str = "", interval: str = Interval.MONTH, credits_micros: int | None = None
) -> CheckoutItem:
    if kind == CheckoutKind.CREDITS:
        if credits_micros is None:
            raise InvalidRequest("Say how many credits to buy.", code="invalid_amount",
                                 fields={"credits": ["This field is required for a custom amount."]})
        return CheckoutItem(kind=kind, credits_micros=credits_micros, amount_cents=custom_amount_price(credits_micros))
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
    raise InvalidRequest("kind must be plan, pack or credits.", code="invalid_kind")


@dataclass(frozen=True)
class CheckoutResult:
    url: str
    session_id: str
    simulated: bool


def checkout_start(
    *, org: Organization, kind: str, code: str = "", interval: str = Interval.MONTH, return_to: str = "overview",
    credits_micros: int | None = None, actor: Actor = None,
) -> CheckoutResult:
    """Open a Stripe Checkout Session for a plan (subscription), a pack or a
    custom amount of credits (payments). A custom amount's credits and price
    are fixed here, on the server, and recorded with the session."""
    billing_role_require(org, actor, "buy credits or change the plan")
    item = checkout_item(kind=kind, code=code, interval=interval, credits_micros=credits_micros)
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
    if item.kind != CheckoutKind.CREDITS and not item.stripe_price_id:
        raise StripeNotConfigured(
            "The catalog is not in Stripe yet: an operator needs to run `manage.py sync_catalog`.",
            code="catalog_not_synced",
        )
    customer = customer_for_org(org=org, actor=actor)
    meta = {"tollgate_org_id": str(org.pk), "tollgate_kind": item.kind, "tollgate_item": item.code}
    if item.kind == CheckoutKind.CREDITS:
        meta["tollgate_credits"] = credits_str(item.credits_micros)  # for people reading Stripe; never read back
        line_item = {
            "price_data": {
                "currency": settings.CURRENCY.lower(), "unit_amount": item.amount_cents, "tax_behavior": "exclusive",
                "product_data": {"name": f"{format_credits(item.credits_micros)} Tollgate credits"},
            },
            "quantity": 1,
        }
    else:
        line_item = {"price": item.stripe_price_id, "quantity": 1}
    query = f"return_to={return_to or 'overview'}"
    params = {
        "customer": customer.id,
        "client_reference_id": str(org.pk),
        "line_items": [line_item],
        "automatic_tax": {"enabled": True},
        "tax_id_collection": {"enabled": True},
        # Tax needs the customer's address; Checkout collects it onto the customer.
        "customer_update": {"address": "auto", "name": "auto"},
        "success_url": request_context.site_url() + reverse("billing:checkout_done") + "?session_id={CHECKOUT_SESSION_ID}&" + query,
        "cancel_url": request_context.site_url() + reverse("billing:checkout_canceled") + "?" + query,
        "metadata": meta,
    }
    if settings.STRIPE_ALLOW_PROMOTION_CODES and item.kind in (CheckoutKind.PLAN, CheckoutKind.PACK):
        # The buyer may enter a promotion code made in the Stripe dashboard; it
        # lowers the price, never the credits (fulfilment grants from the catalog).
        params["allow_promotion_codes"] = True
    if item.kind in (CheckoutKind.PACK, CheckoutKind.CREDITS):
        params.update(
            mode="payment",
            invoice_creation={"enabled": True},  # a receipt and invoice PDF for every pack
            # Keep the card for auto top-ups, which charge it off-session.
            payment_intent_data={"metadata": meta, "setup_future_usage": "off_session"},
        )
    else:
        params.update(mode="subscription", subscription_data={"metadata": meta, **_trial_end(state)})
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
            credits_micros=item.credits_micros, amount_cents=item.amount_cents,
            return_to=return_to or "overview", created_by=actor if isinstance(actor, User) else None,
        )
        audit_record(org=org, action="billing.checkout_started", actor=actor,
                     data={"kind": item.kind, "item": item.code, "session": session["id"], "return_to": back,
                           **_custom_audit(item)})
    return CheckoutResult(url=session["url"], session_id=session["id"], simulated=False)


# Checkout refuses a subscription_data.trial_end less than 48 hours away; a
# few minutes' margin covers the time between here and Stripe's check.
TRIAL_END_MIN_AHEAD = timedelta(hours=48, minutes=5)


def _trial_end(state) -> dict:
    """Subscribing during the sign-up trial keeps the trial: Stripe starts
    billing when it ends (trial_end), as the plans page promises, and the
    trial's credits stay until then. In its last two days Stripe cannot defer
    the first charge from Checkout, so billing starts at once (the trial's
    credits still stay until the trial's end)."""
    ends = state.trial_ends_at
    if state.status != BillingStatus.TRIALING or ends is None or ends - timezone.now() < TRIAL_END_MIN_AHEAD:
        return {}
    return {"trial_end": int(ends.timestamp())}


def _custom_audit(item: CheckoutItem) -> dict:
    if item.kind != CheckoutKind.CREDITS:
        return {}
    return {"credits": credits_str(item.credits_micros), "amount_cents": item.amount_cents}


@transaction.atomic
def _simulated_start(org: Organization, item: CheckoutItem, return_to: str, actor: Actor) -> CheckoutResult:
    session_id = f"sim_cs_{uuid.uuid4().hex}"
    CheckoutStart.objects.create(
        org=org, session_id=session_id, kind=item.kind, plan_price=item.plan_price, pack=item.pack,
        credits_micros=item.credits_micros, amount_cents=item.amount_cents,
        return_to=return_to or "overview", simulated=True, created_by=actor if isinstance(actor, User) else None,
    )
    audit_record(org=org, action="billing.checkout_started", actor=actor,
                 data={"kind": item.kind, "item": item.code, "session": session_id, "simulated": True,
                       **_custom_audit(item)})
    return CheckoutResult(url=reverse("billing:simulate", args=[session_id]), session_id=session_id, simulated=True)


def portal_start(
    *, org: Organization, return_to: str = "overview", actor: Actor = None, flow: dict | None = None
) -> str:
    """A Stripe customer portal session URL: payment methods, plan changes,
    cancellation, invoices. `flow` deep-links into one of the portal's flows
    (confirm a plan change, cancel), which comes back to `return_to` when done."""
    billing_role_require(org, actor, "manage billing")
    back = return_path(return_to)
    if not gateway.configured():
        raise StripeNotConfigured("The billing portal needs Stripe, which is not configured on this Tollgate.")
    customer = customer_for_org(org=org, actor=actor)
    return_url = request_context.site_url() + back
    params = {"customer": customer.id, "return_url": return_url}
    if flow is not None:
        params["flow_data"] = {
            **flow, "after_completion": {"type": "redirect", "redirect": {"return_url": return_url}},
        }
    if settings.STRIPE_PORTAL_CONFIGURATION:
        params["configuration"] = settings.STRIPE_PORTAL_CONFIGURATION
    with gateway.translated_errors("open the billing portal"):
        session = stripe.billing_portal.Session.create(**params, **gateway.options())
    audit_record(org=org, action="billing.portal_opened", actor=actor,
                 data={"customer": customer.id, "flow": (flow or {}).get("type")})
    return session["url"]


# --- plan changes ---------------------------------------------------------------


def _subscribed(state) -> bool:
    return bool(state.subscription_id) and state.status in (
        BillingStatus.ACTIVE, BillingStatus.PAST_DUE, BillingStatus.TRIALING)


def _plan_item_id(subscription_id: str) -> str:
    """The subscription item that carries the plan (not the metered overage price)."""
    synced = djstripe_models.Subscription.objects.filter(id=subscription_id).first()
    if synced is not None and synced.stripe_data.get("items"):
        data = synced.stripe_data
    else:
        with gateway.translated_errors("read the subscription"):
            data = gateway.to_dict(stripe.Subscription.retrieve(subscription_id, **gateway.options()))
    for item in (data.get("items") or {}).get("data", []):
        price_id, product_id, interval = price_facts(item.get("price") or item.get("plan"))
        if plan_price_for(price_id=price_id, product_id=product_id, interval=interval) is not None:
            return item["id"]
    raise Conflict("This subscription has no plan we know; change it in the billing portal.", code="unknown_subscription")


def plan_change_start(
    *, org: Organization, plan_code: str, interval: str = Interval.MONTH, return_to: str = "plans", actor: Actor = None
) -> CheckoutResult:
    """Move the org to another paid plan or billing interval.

    Without a subscription this is a checkout. With one, Stripe's customer
    portal confirms the change, showing the exact prorated amount first; the
    webhooks then apply the plan and its allowance as for any subscription
    change. In the embedded demo the simulated payment switches at once.
    """
    billing_role_require(org, actor, "change the plan")
    state = plans.billing_state_for(org)
    if not _subscribed(state):
        return checkout_start(org=org, kind=CheckoutKind.PLAN, code=plan_code, interval=interval,
                              return_to=return_to, actor=actor)
    item = checkout_item(kind=CheckoutKind.PLAN, code=plan_code, interval=interval)
    if state.plan_code == plan_code and state.interval == interval:
        raise Conflict(f"{item.plan_price.plan.name} billed {item.plan_price.get_interval_display().lower()} "
                       "is already your plan.", code="same_plan")
    if gateway.simulated() and state.subscription_id.startswith("sim_"):
        return _simulated_start(org, item, return_to, actor)
    if not item.stripe_price_id:
        gateway.api_key()
        raise StripeNotConfigured("The catalog is not in Stripe yet: an operator needs to run `manage.py sync_catalog`.",
                                  code="catalog_not_synced")
    url = portal_start(org=org, return_to=return_to, actor=actor, flow={
        "type": "subscription_update_confirm",
        "subscription_update_confirm": {
            "subscription": state.subscription_id,
            "items": [{"id": _plan_item_id(state.subscription_id), "price": item.stripe_price_id, "quantity": 1}],
        },
    })
    return CheckoutResult(url=url, session_id="", simulated=False)


def plan_cancel_start(*, org: Organization, return_to: str = "plans", actor: Actor = None) -> str | None:
    """Cancel the subscription: Stripe's portal confirms it (the plan then runs
    to the end of the paid period). In the embedded demo the simulated
    subscription ends at once. Returns the URL to send the person to, if any."""
    billing_role_require(org, actor, "cancel the plan")
    state = plans.billing_state_for(org)
    if not _subscribed(state):
        raise Conflict("There is no subscription to cancel: this organization is on the Free plan.",
                       code="no_subscription")
    if state.subscription_id.startswith("sim_"):
        subscriptions.plan_simulate_cancel(org=org, actor=actor)
        return None
    return portal_start(org=org, return_to=return_to, actor=actor, flow={
        "type": "subscription_cancel", "subscription_cancel": {"subscription": state.subscription_id},
    })
