"""Reading Stripe objects into plain facts the billing services act on.

The webhook receivers hand services what Stripe says, parsed here once, so
services never dig through payloads. Field names follow the API version
dj-stripe pins (2026 "dahlia": an invoice's subscription is under
`parent.subscription_details`, a subscription's period lives on its items,
an invoice line's price under `pricing.price_details`); the older places are
read as a fallback so an endpoint on an older API version still works.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from datetime import timezone as dt_timezone
from typing import Any

from djstripe import models as djstripe_models

from billing.models import PlanPrice
from billing.selectors import plan_price_for


def stripe_id(value: Any) -> str:
    """An id whether Stripe sent the id or the expanded object."""
    if isinstance(value, dict):
        return value.get("id") or ""
    return value or ""


def timestamp(value: int | None) -> datetime | None:
    return datetime.fromtimestamp(int(value), tz=dt_timezone.utc) if value else None


def metadata(data: dict) -> dict:
    return data.get("metadata") or {}


@dataclass(frozen=True)
class SubscriptionFacts:
    id: str
    customer_id: str
    status: str
    plan_price: PlanPrice | None
    created: datetime | None
    current_period_start: datetime | None
    current_period_end: datetime | None
    trial_end: datetime | None
    cancel_at_period_end: bool
    metadata: dict
    # (price id, product id) of every item: the plan's and any metered ones.
    item_prices: tuple[tuple[str, str], ...] = ()

    @property
    def live(self) -> bool:
        return self.status in LIVE_STATUSES


# Stripe subscription statuses under which the customer keeps the plan
# (past_due and unpaid only through our grace period).
LIVE_STATUSES = frozenset({"active", "trialing", "past_due", "unpaid"})
ENDED_STATUSES = frozenset({"canceled", "incomplete_expired", "paused"})


def price_facts(price: Any) -> tuple[str, str, str]:
    """(price id, product id, interval) of a price or legacy plan, expanded or as an id."""
    if isinstance(price, dict):
        return price.get("id", ""), stripe_id(price.get("product")), (price.get("recurring") or {}).get("interval", "")
    return price or "", "", ""


def subscription_facts(data: dict) -> SubscriptionFacts:
    plan_price = None
    period_start = timestamp(data.get("current_period_start"))
    period_end = timestamp(data.get("current_period_end"))
    item_prices = []
    for item in (data.get("items") or {}).get("data", []):
        price_id, product_id, interval = price_facts(item.get("price") or item.get("plan"))
        item_prices.append((price_id, product_id))
        found = plan_price_for(price_id=price_id, product_id=product_id, interval=interval)
        if found is not None and plan_price is None:
            plan_price = found
            period_start = timestamp(item.get("current_period_start")) or period_start
            period_end = timestamp(item.get("current_period_end")) or period_end
    return SubscriptionFacts(
        id=data["id"],
        customer_id=stripe_id(data.get("customer")),
        status=data.get("status", ""),
        plan_price=plan_price,
        created=timestamp(data.get("created")),
        current_period_start=period_start,
        current_period_end=period_end,
        trial_end=timestamp(data.get("trial_end")),
        cancel_at_period_end=bool(data.get("cancel_at_period_end")),
        metadata=metadata(data),
        item_prices=tuple(item_prices),
    )


# --- promotions: what a discount took off ---------------------------------------


def discount_promotion(discount: Any) -> Any:
    """The promotion code (id or expanded object) of one applied discount, else
    its coupon: from a Checkout Session's `discounts` ({coupon, promotion_code}),
    an invoice's expanded `discounts` (Discount objects, the coupon under
    `source` since 2025, directly on older versions) or a breakdown's discount."""
    if not isinstance(discount, dict):
        return ""  # an unexpanded discount id (di_...) says nothing more
    if discount.get("promotion_code"):
        return discount["promotion_code"]
    return (discount.get("source") or {}).get("coupon") or discount.get("coupon") or ""


def promotions_of(data: dict) -> list[Any]:
    """Every promotion code (or coupon) applied to a session or invoice, in order, once each."""
    found = [discount_promotion(d) for d in data.get("discounts") or []]
    breakdown = ((data.get("total_details") or {}).get("breakdown") or {}).get("discounts") or []
    found += [discount_promotion(part.get("discount")) for part in breakdown if isinstance(part, dict)]
    unique, seen = [], set()
    for value in found:
        key = stripe_id(value)
        if key and key not in seen:
            seen.add(key)
            unique.append(value)
    return unique


@dataclass(frozen=True)
class CheckoutAmounts:
    """What promotions took off a paid Checkout Session and what it charged,
    in its currency's minor unit. The price itself is ours (the catalog, or
    the custom amount recorded when the checkout started)."""

    discount_cents: int  # total_details.amount_discount
    total_cents: int | None  # amount_total: charged, tax included
    promotions: tuple[Any, ...] = ()


def checkout_amounts(session: dict) -> CheckoutAmounts:
    discount = int((session.get("total_details") or {}).get("amount_discount") or 0)
    total = session.get("amount_total")
    return CheckoutAmounts(
        discount_cents=max(0, discount),
        total_cents=max(0, int(total)) if total is not None else None,
        promotions=tuple(promotions_of(session)),
    )


def invoice_discount_cents(data: dict) -> int:
    """What discounts took off an invoice: the sum of `total_discount_amounts`."""
    return sum(int(part.get("amount") or 0) for part in data.get("total_discount_amounts") or []
               if isinstance(part, dict))


@dataclass(frozen=True)
class InvoiceFacts:
    id: str
    customer_id: str
    subscription_id: str
    status: str
    created: datetime | None
    plan_price: PlanPrice | None
    period_start: datetime | None
    period_end: datetime | None
    metadata: dict
    amount_paid_cents: int | None = None
    discount_cents: int = 0
    promotions: tuple[Any, ...] = ()


def invoice_subscription_id(data: dict) -> str:
    details = ((data.get("parent") or {}).get("subscription_details")) or {}
    return stripe_id(details.get("subscription")) or stripe_id(data.get("subscription"))


def _line_price(line: dict) -> tuple[str, str]:
    details = ((line.get("pricing") or {}).get("price_details")) or {}
    if details.get("price"):
        return stripe_id(details.get("price")), stripe_id(details.get("product"))
    price_id, product_id, _interval = price_facts(line.get("price") or line.get("plan"))
    return price_id, product_id


def invoice_facts(data: dict) -> InvoiceFacts:
    """The plan line is the last non-negative line priced at one of our plans:
    a plan change invoices a credit for the old plan (negative) and the new
    plan for the rest of the period."""
    plan_price = None
    period_start = period_end = None
    for line in (data.get("lines") or {}).get("data", []):
        price_id, product_id = _line_price(line)
        if not price_id or (line.get("amount") or 0) < 0:
            continue
        found = plan_price_for(price_id=price_id, product_id=product_id)
        if found is not None:
            plan_price = found
            period = line.get("period") or {}
            period_start, period_end = timestamp(period.get("start")), timestamp(period.get("end"))
    details = ((data.get("parent") or {}).get("subscription_details")) or {}
    return InvoiceFacts(
        id=data["id"],
        customer_id=stripe_id(data.get("customer")),
        subscription_id=invoice_subscription_id(data),
        status=data.get("status", ""),
        created=timestamp(data.get("created")),
        plan_price=plan_price,
        period_start=period_start,
        period_end=period_end,
        metadata={**(details.get("metadata") or {}), **metadata(data)},
        amount_paid_cents=int(data["amount_paid"]) if data.get("amount_paid") is not None else None,
        discount_cents=invoice_discount_cents(data),
        promotions=tuple(promotions_of(data)),
    )


# --- invoices, for the invoices page ----------------------------------------


@dataclass(frozen=True)
class InvoiceRow:
    id: str
    number: str
    status: str
    currency: str
    subtotal_cents: int
    tax_cents: int
    total_cents: int
    amount_due_cents: int
    created: datetime | None
    period_start: datetime | None
    period_end: datetime | None
    description: str
    hosted_url: str
    pdf_url: str
    discount_cents: int = 0
    amount_paid_cents: int = 0

    @property
    def status_label(self) -> str:
        return {"paid": "Paid", "open": "Due", "draft": "Draft", "void": "Void",
                "uncollectible": "Uncollectible"}.get(self.status, self.status.title())

    @property
    def status_badge(self) -> str:
        return {"paid": "ok", "open": "warn", "uncollectible": "bad"}.get(self.status, "")


def invoice_row(invoice: djstripe_models.Invoice) -> InvoiceRow:
    """What the invoices page shows of one of dj-stripe's synced invoices, read
    from Stripe's own data (amounts in the invoice's minor unit)."""
    data = invoice.stripe_data
    taxes = data.get("total_taxes")
    tax = sum(int(t.get("amount") or 0) for t in taxes) if isinstance(taxes, list) else int(data.get("tax") or 0)
    lines = ((data.get("lines") or {}).get("data") or [])
    description = data.get("description") or ""
    if not description and lines:
        description = lines[0].get("description") or ""
        if len(lines) > 1:
            description += f" and {len(lines) - 1} more"
    return InvoiceRow(
        id=data.get("id") or invoice.id, number=data.get("number") or "", status=data.get("status") or "",
        currency=(data.get("currency") or "usd").upper(), subtotal_cents=int(data.get("subtotal") or 0), tax_cents=tax,
        total_cents=int(data.get("total") or 0), amount_due_cents=int(data.get("amount_due") or 0),
        created=timestamp(data.get("created")), period_start=timestamp(data.get("period_start")),
        period_end=timestamp(data.get("period_end")), description=description,
        hosted_url=data.get("hosted_invoice_url") or "", pdf_url=data.get("invoice_pdf") or "",
        discount_cents=invoice_discount_cents(data), amount_paid_cents=int(data.get("amount_paid") or 0),
    )


# --- the saved card ------------------------------------------------------------------

# Stripe's `brand` and `display_brand` values, as people know the networks.
CARD_BRANDS = {
    "amex": "American Express", "american_express": "American Express", "cartes_bancaires": "Cartes Bancaires",
    "diners": "Diners Club", "diners_club": "Diners Club", "discover": "Discover", "eftpos_au": "eftpos",
    "eftpos_australia": "eftpos", "interac": "Interac", "jcb": "JCB", "link": "Link", "mastercard": "Mastercard",
    "unionpay": "UnionPay", "union_pay": "UnionPay", "visa": "Visa",
}


@dataclass(frozen=True)
class SavedCard:
    brand: str  # as people read it: "Visa", "American Express"
    last4: str
    exp_month: int | None
    exp_year: int | None

    @property
    def expires(self) -> str:
        return f"{self.exp_month:02d}/{self.exp_year}" if self.exp_month and self.exp_year else ""


def saved_card_for(customer_id: str) -> SavedCard | None:
    """The card auto top-up charges, as dj-stripe synced it from the webhooks
    (`customer.updated`, `payment_method.attached|detached`): the customer's
    default card, else the newest card saved to it, the rule
    `billing.services.topup` applies when it charges. Reads rows; never calls Stripe."""
    if not customer_id:
        return None
    customer = djstripe_models.Customer.objects.filter(id=customer_id).first()
    settings_data = ((customer.stripe_data or {}) if customer else {}).get("invoice_settings") or {}
    default = stripe_id(settings_data.get("default_payment_method"))
    cards = djstripe_models.PaymentMethod.objects.filter(customer__id=customer_id, stripe_data__type="card")
    method = cards.filter(id=default).first() if default else None
    if method is None:
        method = cards.order_by("-created", "-djstripe_id").first()
    if method is None:
        return None
    data = method.stripe_data.get("card") or {}
    code = data.get("display_brand") or data.get("brand") or ""
    return SavedCard(
        brand=CARD_BRANDS.get(code, code.replace("_", " ").title() or "Card"), last4=data.get("last4") or "",
        exp_month=data.get("exp_month"), exp_year=data.get("exp_year"),
    )
