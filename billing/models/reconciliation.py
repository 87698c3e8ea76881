"""Reconciliation with Stripe: each run of `stripe_reconcile` and the drift it
found between what Stripe was paid (dj-stripe's tables) and what the ledger
granted, clawed back and settled (billing.services.reconciliation)."""

from __future__ import annotations

from django.db import models
from django.urls import NoReverseMatch, reverse


class RunStatus(models.TextChoices):
    RUNNING = "running", "Running (or stopped before it finished)"
    CLEAN = "clean", "No drift"
    DRIFT = "drift", "Drift found"


class DriftKind(models.TextChoices):
    PAID_WITHOUT_GRANT = "paid_without_grant", "Paid in Stripe, no credits granted"
    GRANTED_TWICE = "granted_twice", "One payment granted more than once"
    GRANT_WITHOUT_PAYMENT = "grant_without_payment", "Granted for a payment that did not succeed"
    GRANT_AMOUNT = "grant_amount", "Granted amount differs from what was bought"
    REFUND_NOT_CLAWED_BACK = "refund_not_clawed_back", "Refund without its clawback"
    CLAWBACK_WITHOUT_REFUND = "clawback_without_refund", "Clawback without a refund in Stripe"
    DISPUTE_NOT_CLAWED_BACK = "dispute_not_clawed_back", "Lost dispute without its clawback"
    OVERAGE_NOT_REPORTED = "overage_not_reported", "Overage debt not reported to Stripe"
    OVERAGE_NOT_SETTLED = "overage_not_settled", "Overage report and settlement differ"
    CACHED_BALANCE = "cached_balance", "Cached balance differs from the ledger"


class ReconciliationRun(models.Model):
    """One pass over dj-stripe's tables and the ledger. Stored when it starts,
    so a run killed half-way shows as still running; its findings are written
    in the transaction that finishes it."""

    started_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    since = models.DateTimeField(null=True, blank=True, help_text="Only Stripe objects and grants made since then.")
    trigger = models.CharField(max_length=64, help_text="beat, command, or the staff member who asked for it.")
    status = models.CharField(max_length=8, choices=RunStatus.choices, default=RunStatus.RUNNING)
    checked = models.JSONField(default=dict, blank=True, help_text="How many of each thing were checked.")
    findings_count = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-started_at", "-id"]
        indexes = [models.Index(fields=["-started_at"], name="reconcile_run_recent")]

    def __str__(self) -> str:
        return f"Reconciliation {self.pk} ({self.status})"


class ReconciliationFinding(models.Model):
    """One drift: what it is, the Stripe side and the Tollgate side, each linked in the admin."""

    run = models.ForeignKey(ReconciliationRun, on_delete=models.CASCADE, related_name="findings")
    kind = models.CharField(max_length=32, choices=DriftKind.choices)
    org = models.ForeignKey("orgs.Organization", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    message = models.CharField(max_length=500)
    # The Stripe side: its id, its dj-stripe model ("session", "paymentintent",
    # "invoice", "charge", "dispute") and row, when dj-stripe holds it.
    stripe_id = models.CharField(max_length=255, blank=True)
    stripe_model = models.CharField(max_length=32, blank=True)
    stripe_pk = models.BigIntegerField(null=True, blank=True)
    # The Tollgate side: "app_label.model_name" and its primary key.
    local_model = models.CharField(max_length=64, blank=True)
    local_pk = models.BigIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.get_kind_display()}: {self.message}"

    @property
    def stripe_admin_url(self) -> str:
        """The dj-stripe row's admin page, when dj-stripe holds it and its admin is registered."""
        if self.stripe_pk is None or not self.stripe_model:
            return ""
        return _admin_change_url(f"djstripe.{self.stripe_model}", self.stripe_pk)

    @property
    def local_admin_url(self) -> str:
        if self.local_pk is None or not self.local_model:
            return ""
        return _admin_change_url(self.local_model, self.local_pk)


def _admin_change_url(model: str, pk: int) -> str:
    app_label, _dot, model_name = model.partition(".")
    try:
        return reverse(f"admin:{app_label}_{model_name}_change", args=[pk])
    except NoReverseMatch:
        return ""  # not in the admin (hidden by the tidy-up): the id is shown without a link
