"""Billing: the catalog, each organization's plan and Stripe link, and the
records that tie Stripe payments to ledger grants.

Money is integer cents (`*_cents`), credits integer micro-credits
(`*_micros`). Stripe's own objects live in dj-stripe's tables, which only
dj-stripe writes (it syncs them from Stripe); these models link to them by
Stripe id.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from usage.units import format_credits

# --- catalog ------------------------------------------------------------


class Interval(models.TextChoices):
    MONTH = "month", "Monthly"
    YEAR = "year", "Yearly"


class Plan(models.Model):
    """A plan people subscribe to. Defaults come from billing/catalog.json;
    staff edit them in the admin, and `sync_catalog` pushes them to Stripe."""

    code = models.SlugField(max_length=32, unique=True)
    name = models.CharField(max_length=60)
    description = models.CharField(max_length=255, blank=True)
    features = models.JSONField(default=list, blank=True, help_text="Feature codes this plan unlocks.")
    overage_allowed = models.BooleanField(
        default=False, help_text="Usage past zero is billed in arrears instead of refused with 402."
    )
    trial_days = models.PositiveSmallIntegerField(default=0)
    trial_allowance_micros = models.BigIntegerField(default=0, help_text="Credits granted for the trial.")
    sort_order = models.PositiveSmallIntegerField(default=0)
    active = models.BooleanField(default=True)
    stripe_product_id = models.CharField(max_length=255, blank=True)

    class Meta:
        ordering = ["sort_order", "code"]
        constraints = [
            models.CheckConstraint(condition=Q(trial_allowance_micros__gte=0), name="plan_trial_allowance_not_negative"),
        ]

    def __str__(self) -> str:
        return self.name


class PlanPrice(models.Model):
    """One billing interval of a plan: what it costs and the credits each period brings."""

    plan = models.ForeignKey(Plan, on_delete=models.PROTECT, related_name="prices")
    interval = models.CharField(max_length=5, choices=Interval.choices)
    amount_cents = models.PositiveIntegerField()
    currency = models.CharField(max_length=3, default="usd")
    allowance_micros = models.BigIntegerField(help_text="Credits granted each period; they expire at its end.")
    lookup_key = models.CharField(max_length=100, unique=True)
    stripe_price_id = models.CharField(max_length=255, blank=True, db_index=True)
    active = models.BooleanField(default=True)

    class Meta:
        ordering = ["plan__sort_order", "interval"]
        constraints = [
            models.UniqueConstraint(fields=["plan", "interval"], name="plan_price_one_per_interval"),
            models.CheckConstraint(condition=Q(allowance_micros__gte=0), name="plan_price_allowance_not_negative"),
        ]

    def __str__(self) -> str:
        return f"{self.plan.name} ({self.get_interval_display().lower()})"


class Pack(models.Model):
    """A credit pack for one-off purchase."""

    code = models.SlugField(max_length=32, unique=True)
    name = models.CharField(max_length=60)
    credits_micros = models.BigIntegerField()
    amount_cents = models.PositiveIntegerField()
    currency = models.CharField(max_length=3, default="usd")
    lookup_key = models.CharField(max_length=100, unique=True)
    stripe_product_id = models.CharField(max_length=255, blank=True)
    stripe_price_id = models.CharField(max_length=255, blank=True, db_index=True)
    sort_order = models.PositiveSmallIntegerField(default=0)
    active = models.BooleanField(default=True)

    class Meta:
        ordering = ["sort_order", "code"]
        constraints = [
            models.CheckConstraint(condition=Q(credits_micros__gt=0), name="pack_credits_positive"),
            models.CheckConstraint(condition=Q(amount_cents__gt=0), name="pack_amount_positive"),
        ]

    def __str__(self) -> str:
        return f"{format_credits(self.credits_micros)} credits"


class OveragePrice(models.Model):
    """The metered price usage past zero is billed at, per subscription interval
    (a subscription's prices share its interval)."""

    interval = models.CharField(max_length=5, choices=Interval.choices, unique=True)
    cents_per_credit = models.DecimalField(max_digits=12, decimal_places=6)
    currency = models.CharField(max_length=3, default="usd")
    lookup_key = models.CharField(max_length=100, unique=True)
    stripe_price_id = models.CharField(max_length=255, blank=True)

    def __str__(self) -> str:
        return f"Overage ({self.get_interval_display().lower()})"


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
    amount_cents = models.PositiveIntegerField(help_text="Price before tax.")
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


# --- auto top-up ----------------------------------------------------------------


class AutoTopUpSettings(models.Model):
    org = models.OneToOneField("orgs.Organization", on_delete=models.PROTECT, related_name="auto_topup")
    enabled = models.BooleanField(default=False)
    threshold_micros = models.BigIntegerField(help_text="Top up when a debit leaves the balance below this.")
    pack = models.ForeignKey(Pack, on_delete=models.PROTECT, related_name="+")
    monthly_cap_cents = models.PositiveIntegerField(help_text="Most that auto top-ups may charge per calendar month.")
    paused_reason = models.CharField(
        max_length=255, blank=True, help_text="Why top-ups stopped (card needs authentication, no card); saving settings clears it."
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "auto top-up settings"
        verbose_name_plural = "auto top-up settings"
        constraints = [
            models.CheckConstraint(condition=Q(threshold_micros__gte=0), name="topup_threshold_not_negative"),
        ]


class AttemptStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    PROCESSING = "processing", "Processing"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Declined"
    ACTION_REQUIRED = "action_required", "Needs authentication"
    CANCELED = "canceled", "Canceled"


OPEN_ATTEMPT_STATUSES = (AttemptStatus.PENDING, AttemptStatus.PROCESSING)


class TopUpAttempt(models.Model):
    """One off-session charge for an auto top-up. Its idempotency key is sent
    to Stripe with the PaymentIntent, so a retried or killed task re-sends the
    same request and Stripe answers with the same PaymentIntent: one charge."""

    org = models.ForeignKey("orgs.Organization", on_delete=models.PROTECT, related_name="+")
    pack = models.ForeignKey(Pack, on_delete=models.PROTECT, related_name="+")
    credits_micros = models.BigIntegerField()
    amount_cents = models.PositiveIntegerField(help_text="Price before tax; counts against the monthly cap.")
    idempotency_key = models.CharField(max_length=64, unique=True)
    status = models.CharField(max_length=16, choices=AttemptStatus.choices, default=AttemptStatus.PENDING)
    number = models.PositiveSmallIntegerField(default=1, help_text="1 for the first try after a trigger, 2+ for retries.")
    payment_intent_id = models.CharField(max_length=255, blank=True, db_index=True)
    tax_calculation_id = models.CharField(max_length=255, blank=True)
    failure_code = models.CharField(max_length=64, blank=True)
    failure_message = models.CharField(max_length=500, blank=True)
    retry_at = models.DateTimeField(null=True, blank=True)
    purchase = models.OneToOneField(Purchase, null=True, blank=True, on_delete=models.PROTECT, related_name="attempt")
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            # At most one charge in flight per organization.
            models.UniqueConstraint(
                fields=["org"], condition=Q(status__in=["pending", "processing"]), name="topup_one_open_attempt"
            ),
        ]
        indexes = [
            models.Index(fields=["retry_at"], condition=Q(status="failed"), name="topup_retry_due"),
            models.Index(fields=["org", "-created_at"], name="topup_org_recent"),
        ]

    def __str__(self) -> str:
        return f"Top-up {self.pk} for {self.org_id} ({self.status})"


# --- overage ---------------------------------------------------------------


class OverageReport(models.Model):
    """Whole credits of usage past zero reported to the Stripe meter. The
    identifier makes Stripe count a re-sent event once."""

    org = models.ForeignKey("orgs.Organization", on_delete=models.PROTECT, related_name="+")
    identifier = models.CharField(max_length=100, unique=True)
    credits = models.PositiveBigIntegerField()
    customer_id = models.CharField(max_length=255)
    sent_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["org"], condition=Q(sent_at__isnull=True), name="overage_one_unsent_report"),
            models.CheckConstraint(condition=Q(credits__gt=0), name="overage_credits_positive"),
        ]


# --- alerts ------------------------------------------------------------------


class AlertKind(models.TextChoices):
    LOW_BALANCE = "low_balance", "Low balance"
    DEPLETED = "depleted", "Balance empty"
    ALLOWANCE_80 = "allowance_80", "80% of the allowance used"
    ALLOWANCE_95 = "allowance_95", "95% of the allowance used"


class AlertState(models.Model):
    """Where one alert stands for one organization, the row its check locks.

    Balance alerts (low, empty) fire when their condition starts and re-arm
    when it ends; `last_sent_at` holds the cooldown, so a balance dipping in
    and out of "low" does not send a mail each time. Allowance alerts fire
    once per allowance period: `reference` names the period they fired for.
    """

    org = models.ForeignKey("orgs.Organization", on_delete=models.CASCADE, related_name="+")
    kind = models.CharField(max_length=16, choices=AlertKind.choices)
    active = models.BooleanField(default=False, help_text="The condition held when last checked and was alerted.")
    reference = models.CharField(max_length=64, blank=True, help_text="The allowance (grant) it last fired for.")
    last_sent_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["org", "kind"], name="alert_state_one_per_kind")]
        indexes = [models.Index(fields=["kind"], condition=Q(active=True), name="alert_state_active")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} for {self.org_id}"


class AlertPreference(models.Model):
    """One person's allowance alerts in one organization. Without a row, people
    who manage billing get both and members neither."""

    org = models.ForeignKey("orgs.Organization", on_delete=models.CASCADE, related_name="+")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    allowance_80 = models.BooleanField(default=True)
    allowance_95 = models.BooleanField(default=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["org", "user"], name="alert_preference_one_per_person")]
