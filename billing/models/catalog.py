"""The catalog: plans, their prices, credit packs and overage prices.

Money is integer cents (`*_cents`), credits integer micro-credits
(`*_micros`). Stripe's own objects live in dj-stripe's tables, which only
dj-stripe writes (it syncs them from Stripe); these models link to them by
Stripe id.
"""

from __future__ import annotations

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
    # Counts the plan caps per organization; empty: no cap. Enforced where they
    # are met (inviting and joining, making a key) through orgs.entitlements;
    # lowering one keeps what is already there and refuses only more.
    members_limit = models.PositiveIntegerField(
        null=True, blank=True, help_text="Members (with open invitations) an organization may have; empty: unlimited."
    )
    api_keys_limit = models.PositiveIntegerField(
        null=True, blank=True, help_text="Active API keys an organization may have; empty: unlimited."
    )
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
