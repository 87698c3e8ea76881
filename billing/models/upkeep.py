"""What billing keeps running on its own: auto top-up settings and attempts,
overage reports to Stripe's meter, and alert state and preferences."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from billing.models.catalog import Pack
from billing.models.state import Purchase


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
    ALLOWANCE_100 = "allowance_100", "All of the allowance used"


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
