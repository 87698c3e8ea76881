"""Shortcuts for billing tests: start checkouts, build what Stripe would hold after payment."""

from __future__ import annotations

from billing import services
from billing.models import BillingState, CheckoutStart, OveragePrice, Pack, PlanPrice
from tests.billing import stripe_builders as b
from usage import services as usage_services
from usage.models import CreditAccount, GrantSource

C = 1_000_000  # one credit in micros


def balance(org) -> int:
    account = CreditAccount.objects.filter(org=org).first()
    return account.balance_micros if account else 0


def start_pack_checkout(org, owner, code: str = "pack_500") -> CheckoutStart:
    result = services.checkout_start(org=org, kind="pack", code=code, actor=owner)
    return CheckoutStart.objects.get(session_id=result.session_id)


def paid_session(fake, start: CheckoutStart, *, payment_status: str = "paid", **overrides) -> dict:
    """Stripe's session once the buyer paid, with its payment intent and charge."""
    session = fake.get(start.session_id)
    customer = BillingState.objects.get(org=start.org).customer_id
    pack: Pack = start.pack
    intent = b.payment_intent(amount=pack.amount_cents, customer=customer,
                              status="succeeded" if payment_status == "paid" else "processing",
                              metadata=session["metadata"])
    if payment_status == "paid":
        charge = b.charge(amount=pack.amount_cents, payment_intent=intent["id"], customer=customer)
        fake.put(charge)
        intent["latest_charge"] = charge["id"]
    fake.put(intent)
    session.update({"status": "complete", "payment_status": payment_status, "payment_intent": intent["id"],
                    "amount_subtotal": pack.amount_cents, "amount_total": pack.amount_cents, **overrides})
    return fake.put(session)


def plan_price(code: str, interval: str = "month") -> PlanPrice:
    return PlanPrice.objects.select_related("plan").get(plan__code=code, interval=interval)


def customer_id(org) -> str:
    return services.customer_for_org(org=org).id


def subscription_for(fake, org, plan: str = "pro", interval: str = "month", *, status: str = "active",
                     period_start: int | None = None, period_end: int | None = None, with_overage: bool = False,
                     **overrides) -> dict:
    """A subscription of `org`'s customer to `plan`, as Stripe would hold it (not yet stored in the fake);
    `with_overage` adds the metered overage price, as Checkout does."""
    price = plan_price(plan, interval)
    prices = [fake.get(price.stripe_price_id)]
    if with_overage:
        prices.append(fake.get(OveragePrice.objects.get(interval=interval).stripe_price_id))
    start = period_start or b.now()
    end = period_end or start + (365 if interval == "year" else 30) * 86400
    return b.subscription(prices=prices, period_start=start, period_end=end, customer=customer_id(org),
                          status=status, metadata={"tollgate_org_id": str(org.pk)}, **overrides)


def invoice_for(fake, subscription: dict, *, status: str = "paid", billing_reason: str = "subscription_cycle",
                **overrides) -> dict:
    """The invoice for a subscription's current period (the plan line only)."""
    item = subscription["items"]["data"][0]
    line = b.invoice_line(price_data=item["price"], period_start=item["current_period_start"],
                          period_end=item["current_period_end"], subscription_id=subscription["id"])
    invoice = b.invoice(lines=[line], subscription_id=subscription["id"], customer=subscription["customer"],
                        status=status, billing_reason=billing_reason, **overrides)
    if status != "paid":
        invoice.update(amount_paid=0, amount_remaining=invoice["amount_due"],
                       status_transitions={**invoice["status_transitions"], "paid_at": None})
    return invoice


def state_of(org) -> BillingState:
    return BillingState.objects.get(org=org)


def grant(org, credits, source=GrantSource.PURCHASE, **kw):
    return usage_services.credits_grant(org=org, amount_micros=int(credits * C), source=source, **kw)


def spend(org, credits, key, **kw):
    return usage_services.credits_debit(org=org, amount_micros=int(credits * C), idempotency_key=key, **kw)
