"""Each organization's billing state (plan, Stripe link, allowance periods) and
the records that tie Stripe payments to ledger grants: checkouts, purchases,
refunds and disputes. Money is integer cents, credits integer micro-credits."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from billing.models.catalog import Interval, Pack, PlanPrice
from billing.models.history import RECORD_CHANGE
from usage.units import format_credits


# --- an organization's billing state ------------------------------------------


class BillingStatus(models.TextChoices):
    FREE = "free", "Free"
    TRIALING = "trialing", "Trial"
    ACTIVE = "active", "Active"
    PAST_DUE = "past_due", "Payment failed (grace period)"


class BillingState(models.Model):
    """One per organization: its Stripe customer, plan, status, trial, period and grace.

    `plan_code` is the plan in force (what the ledger is told through
    `account_set_plan`); the subscription fields mirror Stripe's latest state.
    """

    org = models.OneToOneField("orgs.Organization", on_delete=models.PROTECT, related_name="billing_state")
    customer = models.OneToOneField(
        "djstripe.Customer", to_field="id", null=True, blank=True, on_delete=models.SET_NULL,
        related_name="tollgate_billing",
        help_text="The organization's Stripe customer, created on first need.",
    )
    plan_code = models.CharField(max_length=32, default="free")
    status = models.CharField(max_length=10, choices=BillingStatus.choices, default=BillingStatus.FREE)
    interval = models.CharField(max_length=5, choices=Interval.choices, blank=True)
    subscription_id = models.CharField(max_length=255, blank=True, db_index=True)
    subscription_status = models.CharField(max_length=32, blank=True, help_text="Stripe's status, as last seen.")
    subscription_created_at = models.DateTimeField(null=True, blank=True)
    cancel_at_period_end = models.BooleanField(default=False)
    trial_ends_at = models.DateTimeField(null=True, blank=True)
    current_period_start = models.DateTimeField(null=True, blank=True)
    current_period_end = models.DateTimeField(null=True, blank=True)
    grace_ends_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = [
            # The beat tasks' scans: grace periods and trials that are due.
            models.Index(fields=["grace_ends_at"], condition=Q(status="past_due"), name="billing_grace_due"),
            models.Index(fields=["trial_ends_at"], condition=Q(status="trialing"), name="billing_trial_due"),
            models.Index(fields=["current_period_end"], condition=Q(status="free"), name="billing_free_period_due"),
        ]
        # Every change of plan, status or interval leaves a BillingStateChange.
        triggers = [RECORD_CHANGE]

    def __str__(self) -> str:
        return f"{self.org} on {self.plan_code} ({self.status})"


class AllowancePeriod(models.Model):
    """The plan allowance granted for one subscription period: at most one per
    (subscription, period end, plan), the previous one expiring when it starts."""

    org = models.ForeignKey("orgs.Organization", on_delete=models.PROTECT, related_name="+")
    subscription_id = models.CharField(max_length=255, help_text="Stripe subscription, or free:/trial: for ours.")
    plan_code = models.CharField(max_length=32)
    period_start = models.DateTimeField()
    period_end = models.DateTimeField()
    invoice_id = models.CharField(max_length=255, blank=True)
    invoice_created_at = models.DateTimeField(null=True, blank=True)
    # What the period's invoice took (Stripe's amount_paid, tax included) and
    # what promotions took off it; empty for our own periods (trial, Free, demo).
    amount_paid_cents = models.PositiveIntegerField(null=True, blank=True,
                                                    help_text="The invoice's amount paid, tax included.")
    discount_cents = models.PositiveIntegerField(default=0, help_text="Taken off the invoice by promotions.")
    promotion_code = models.CharField(max_length=255, blank=True, help_text="The promotion code (or coupon) applied.")
    grant = models.ForeignKey("usage.Grant", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["subscription_id", "period_end", "plan_code"], name="allowance_once_per_period_and_plan"
            ),
        ]
        indexes = [models.Index(fields=["org", "-period_end"], name="allowance_org_recent")]


class CheckoutKind(models.TextChoices):
    PLAN = "plan", "Plan"
    PACK = "pack", "Credit pack"
    CREDITS = "credits", "Credits (custom amount)"


class CheckoutStatus(models.TextChoices):
    OPEN = "open", "Open"
    COMPLETE = "complete", "Complete"
    EXPIRED = "expired", "Expired"
    FAILED = "failed", "Payment failed"


class CheckoutStart(models.Model):
    """A Checkout Session we created: what it sells and to whom. Fulfilment
    reads the item from here, never from the payload or the client."""

    org = models.ForeignKey("orgs.Organization", on_delete=models.PROTECT, related_name="+")
    session_id = models.CharField(max_length=255, unique=True)
    kind = models.CharField(max_length=8, choices=CheckoutKind.choices)
    plan_price = models.ForeignKey(PlanPrice, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    pack = models.ForeignKey(Pack, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    # A custom amount: the credits and price fixed here when the checkout
    # started are what fulfilment grants, whatever the payment says.
    credits_micros = models.BigIntegerField(null=True, blank=True)
    amount_cents = models.PositiveIntegerField(null=True, blank=True, help_text="Price before tax.")
    return_to = models.CharField(max_length=20, blank=True)
    status = models.CharField(max_length=10, choices=CheckoutStatus.choices, default=CheckoutStatus.OPEN)
    simulated = models.BooleanField(default=False, help_text="Made by the demo's simulated payments; no money moved.")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=(Q(kind="plan", plan_price__isnull=False, pack__isnull=True, credits_micros__isnull=True)
                           | Q(kind="pack", pack__isnull=False, plan_price__isnull=True, credits_micros__isnull=True)
                           | Q(kind="credits", pack__isnull=True, plan_price__isnull=True,
                               credits_micros__gt=0, amount_cents__gt=0)),
                name="checkout_sells_one_item",
            ),
        ]


class PurchaseKind(models.TextChoices):
    PACK = "pack", "Credit pack"
    CREDITS = "credits", "Credits (custom amount)"
    AUTO_TOPUP = "auto_topup", "Auto top-up"


class Purchase(models.Model):
    """A paid one-off credit purchase and the grant it made. Refunds and
    disputes find the credits in question through its payment intent."""

    org = models.ForeignKey("orgs.Organization", on_delete=models.PROTECT, related_name="+")
    kind = models.CharField(max_length=10, choices=PurchaseKind.choices)
    pack = models.ForeignKey(Pack, null=True, blank=True, on_delete=models.PROTECT, related_name="+",
                             help_text="Empty for a custom amount.")
    credits_micros = models.BigIntegerField()
    # What was actually paid: a promotion code lowers the price, never the credits.
    amount_cents = models.PositiveIntegerField(help_text="Paid before tax, after any promotion.")
    discount_cents = models.PositiveIntegerField(default=0, help_text="Taken off the list price by a promotion.")
    promotion_code = models.CharField(max_length=255, blank=True, help_text="The promotion code (or coupon) applied.")
    total_cents = models.PositiveIntegerField(null=True, blank=True,
                                              help_text="Charged, tax included, as Stripe reported it.")
    currency = models.CharField(max_length=3, default="usd")
    checkout_session_id = models.CharField(max_length=255, null=True, blank=True, unique=True)
    payment_intent_id = models.CharField(max_length=255, null=True, blank=True, unique=True)
    grant = models.ForeignKey("usage.Grant", on_delete=models.PROTECT, related_name="+")
    simulated = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(credits_micros__gt=0), name="purchase_credits_positive"),
            models.CheckConstraint(condition=Q(kind="credits") | Q(pack__isnull=False), name="purchase_pack_unless_custom"),
        ]
        indexes = [models.Index(fields=["org", "-created_at"], name="purchase_org_recent")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {format_credits(self.credits_micros)} credits"

    @property
    def list_amount_cents(self) -> int:
        """The price before the promotion (and before tax)."""
        return self.amount_cents + self.discount_cents


class RefundRecord(models.Model):
    """One step of a charge's cumulative refund, and the credits clawed back for it."""

    org = models.ForeignKey("orgs.Organization", on_delete=models.PROTECT, related_name="+")
    purchase = models.ForeignKey(Purchase, on_delete=models.PROTECT, related_name="refunds")
    charge_id = models.CharField(max_length=255)
    amount_refunded_cents = models.PositiveIntegerField(help_text="The charge's total refunded so far.")
    requested_micros = models.BigIntegerField(help_text="Credits this refund step takes back.")
    clawed_micros = models.BigIntegerField()
    shortfall_micros = models.BigIntegerField(help_text="Credits already spent that could not be taken back.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["charge_id", "amount_refunded_cents"], name="refund_once_per_step"),
        ]


class DisputeRecord(models.Model):
    """A disputed purchase and the credits frozen while it is open."""

    org = models.ForeignKey("orgs.Organization", on_delete=models.PROTECT, related_name="+")
    purchase = models.ForeignKey(Purchase, on_delete=models.PROTECT, related_name="disputes")
    dispute_id = models.CharField(max_length=255, unique=True)
    charge_id = models.CharField(max_length=255, blank=True)
    amount_cents = models.PositiveIntegerField()
    status = models.CharField(max_length=32)
    frozen_micros = models.BigIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    closed_at = models.DateTimeField(null=True, blank=True)
