"""What usage is and costs: meters, rates, provider keys, usage events and their rollups."""

from __future__ import annotations

from django.conf import settings
from django.contrib.postgres.indexes import BrinIndex
from django.db import models
from django.db.models import Q

from usage.models.ledger import CreditAccount, Hold, LedgerEntry
from usage.models.triggers import APPEND_ONLY
from usage.units import format_credits


class MeterCategory(models.TextChoices):
    # What a unit of the meter costs us. Provider meters pass a model
    # provider's price through; when the org's own provider key made the call
    # the provider bills the org directly, so Tollgate bills only platform meters.
    PROVIDER = "provider", "Provider usage (tokens, speech, images, video)"
    PLATFORM = "platform", "Platform work (compute, actions)"


class Meter(models.Model):
    """What a usage event counts, e.g. `ai.output_tokens` in tokens."""

    code = models.CharField(max_length=64, unique=True)
    name = models.CharField(max_length=100)
    unit = models.CharField(max_length=32, help_text="Singular: token, second, action, character, minute, image.")
    category = models.CharField(max_length=10, choices=MeterCategory.choices)
    description = models.CharField(max_length=300, blank=True)
    is_active = models.BooleanField(default=True, help_text="Inactive meters refuse new usage.")
    # A feature code of billing's catalog (e.g. media_generation): usage and
    # holds on this meter are refused (403 feature_not_in_plan) for an account
    # whose plan lacks it. Checked against CreditAccount.features, which
    # billing writes down, so the ledger never reads billing's tables.
    required_feature = models.CharField(
        max_length=64, blank=True,
        help_text="A plan feature this meter needs (e.g. media_generation); empty: every plan may use it.",
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["code"]

    def __str__(self) -> str:
        return self.code


class Rate(models.Model):
    """Credits per unit of a meter, for one model (or any) on one plan (or all).

    The most specific row wins: (model, plan), then (model, any plan), then
    (any model, plan), then (any model, any plan).
    """

    meter = models.ForeignKey(Meter, on_delete=models.PROTECT, related_name="rates")
    model = models.CharField(max_length=64, blank=True, help_text="Empty: any model.")
    plan_code = models.CharField(max_length=32, blank=True, help_text="Empty: every plan. Else a plan code of billing's catalog.")
    credits_per_unit = models.DecimalField(max_digits=24, decimal_places=12)
    provider = models.CharField(max_length=32, blank=True, help_text="Whose model this is, e.g. openai.")
    provider_usd_per_unit = models.DecimalField(
        max_digits=24, decimal_places=12, null=True, blank=True,
        help_text="The provider's public list price this rate was derived from (reference only).",
    )
    note = models.CharField(max_length=300, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["meter__code", "model", "plan_code"]
        constraints = [
            models.UniqueConstraint(fields=["meter", "model", "plan_code"], name="rate_unique_meter_model_plan"),
            models.CheckConstraint(condition=Q(credits_per_unit__gte=0), name="rate_not_negative"),
        ]

    def __str__(self) -> str:
        return f"{self.meter_id}/{self.model or '*'}/{self.plan_code or '*'} = {self.credits_per_unit}"


class Provider(models.TextChoices):
    OPENAI = "openai", "OpenAI"
    ANTHROPIC = "anthropic", "Anthropic"
    GOOGLE = "google", "Google"
    OTHER = "other", "Other"


class ProviderKey(models.Model):
    """A provider API key an organization brings. Only its label and last four
    characters are kept: Tollgate never sees or stores the secret."""

    org = models.ForeignKey("orgs.Organization", on_delete=models.PROTECT, related_name="provider_keys")
    provider = models.CharField(max_length=16, choices=Provider.choices)
    label = models.CharField(max_length=100)
    last_four = models.CharField(max_length=4)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["org", "-created_at"], name="provider_key_org")]

    def __str__(self) -> str:
        return f"{self.get_provider_display()} key “{self.label}” (…{self.last_four})"

    def active_at(self, when) -> bool:
        return self.created_at <= when and (self.revoked_at is None or when < self.revoked_at)


class BillingMode(models.TextChoices):
    PLATFORM_KEY = "platform_key", "Platform key: billed in full"
    OWN_KEY = "own_key", "Own provider key: compute only"


class UsageEvent(models.Model):
    """One metered fact: a quantity of a meter, priced and debited once. Append-only."""

    # Searched by account (and time) only: the other keys carry no index of their own.
    account = models.ForeignKey(CreditAccount, on_delete=models.PROTECT, related_name="usage_events", db_index=False)
    member = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+", db_index=False
    )
    meter = models.ForeignKey(Meter, on_delete=models.PROTECT, related_name="+", db_index=False)
    model = models.CharField(max_length=64, blank=True)
    quantity = models.DecimalField(max_digits=30, decimal_places=9)
    credits_per_unit = models.DecimalField(max_digits=24, decimal_places=12, help_text="The rate applied.")
    credits_micros = models.BigIntegerField(help_text="What it cost, rounded once, half up.")
    balance_after_micros = models.BigIntegerField(help_text="The account's balance right after it, as first answered.")
    billing_mode = models.CharField(max_length=12, choices=BillingMode.choices)
    provider_key = models.ForeignKey(ProviderKey, null=True, blank=True, on_delete=models.PROTECT, related_name="+", db_index=False)
    workflow_run_id = models.CharField(max_length=255, blank=True)
    occurred_at = models.DateTimeField()
    created_at = models.DateTimeField()
    metadata = models.JSONField(default=dict, blank=True)
    idempotency_key = models.CharField(max_length=255)
    # A hash of what the caller asked for: a replay of the key with another request is a conflict.
    request_fingerprint = models.CharField(max_length=64)
    ledger_entry = models.ForeignKey(LedgerEntry, null=True, blank=True, on_delete=models.PROTECT, related_name="usage_events", db_index=False)
    hold = models.ForeignKey(Hold, null=True, blank=True, on_delete=models.PROTECT, related_name="usage_events", db_index=False)
    # The API key that recorded it (its prefix: keys are never deleted, only revoked); null when
    # recorded by a person or the system. What the runaway breaker attributes spend to.
    api_key_prefix = models.CharField(max_length=16, null=True, blank=True)
    # The organization the usage was for, when a member's personal account paid
    # for it (`member_usage: personal`); null for an account's own usage.
    for_org = models.ForeignKey(
        "orgs.Organization", null=True, blank=True, on_delete=models.PROTECT, related_name="+", db_index=False
    )
    # The spending token that recorded it (usage.services.tokens), when one did.
    spending_token = models.ForeignKey(
        "usage.SpendingToken", null=True, blank=True, on_delete=models.PROTECT, related_name="usage_events",
        db_index=False,
    )

    class Meta:
        constraints = [
            # The caller's keys: one space per account and the org the usage was
            # for, so two organizations routing to one member never meet.
            models.UniqueConstraint(
                fields=["account", "idempotency_key", "for_org"], name="usage_event_idempotency_per_account",
                nulls_distinct=False,
            ),
            models.CheckConstraint(condition=Q(quantity__gt=0), name="usage_event_quantity_positive"),
            models.CheckConstraint(condition=Q(credits_micros__gte=0), name="usage_event_credits_not_negative"),
        ]
        indexes = [
            # Usage summaries and charts: an account's events in a time range.
            models.Index(fields=["account", "occurred_at"], name="usage_event_account_time"),
            # The roll-up's window of new events, and the charts' tail of events
            # not rolled up yet. BRIN: rows arrive in created_at order, so a few
            # pages per range summarise it, at next to no cost per insert.
            # autosummarize: autovacuum summarises each range soon after it
            # fills; an unsummarised range always matches, costing a scan.
            BrinIndex(fields=["created_at"], name="usage_event_created_brin", pages_per_range=16, autosummarize=True),
            # The runaway breaker: an account's and a key's spend by the time it was debited.
            models.Index(fields=["account", "created_at"], name="usage_event_account_created"),
            models.Index(
                fields=["api_key_prefix", "created_at"], name="usage_event_key_created",
                condition=Q(api_key_prefix__isnull=False),
            ),
            # An organization's members' usage paid from their personal balances.
            models.Index(fields=["for_org", "occurred_at"], name="usage_event_for_org_time",
                         condition=Q(for_org__isnull=False)),
            # A run's receipt (usage.selectors.receipts): the org's events of one
            # run, and its members' paid personally. Partial: most events name no run.
            models.Index(fields=["account", "workflow_run_id"], name="usage_event_account_run",
                         condition=~Q(workflow_run_id="")),
            models.Index(fields=["for_org", "workflow_run_id"], name="usage_event_for_org_run",
                         condition=Q(for_org__isnull=False) & ~Q(workflow_run_id="")),
            # A retry in pool mode of an event a member paid for (usage.services.events).
            models.Index(fields=["for_org", "idempotency_key"], name="usage_event_for_org_key",
                         condition=Q(for_org__isnull=False)),
            # A token's events (its list, a run's receipt).
            models.Index(fields=["spending_token"], name="usage_event_spending_token",
                         condition=Q(spending_token__isnull=False)),
            # A hold's events, of every run (a run's receipt: what of a hold's capture
            # no event itemises). Partial: most events name no hold.
            models.Index(fields=["hold"], name="usage_event_hold", condition=Q(hold__isnull=False)),
        ]
        triggers = [APPEND_ONLY]

    def __str__(self) -> str:
        return f"{self.quantity} {self.meter_id} = {format_credits(self.credits_micros)} credits"


class UsageRollup(models.Model):
    """Usage per account, UTC day (of occurred_at), meter, model and member:
    what the charts add up instead of every event. Kept by `usage_rollup`, which
    adds each event exactly once (see usage.services.rollup)."""

    account = models.ForeignKey(CreditAccount, on_delete=models.PROTECT, related_name="+", db_index=False)
    day = models.DateField()
    meter = models.ForeignKey(Meter, on_delete=models.PROTECT, related_name="+", db_index=False)
    model = models.CharField(max_length=64, blank=True)
    member = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+", db_index=False
    )
    credits_micros = models.BigIntegerField(default=0)
    quantity = models.DecimalField(max_digits=36, decimal_places=9, default=0)
    events = models.BigIntegerField(default=0)

    class Meta:
        constraints = [
            # Also the charts' index: an account's days in order. NULLS NOT
            # DISTINCT so usage without a member is one row per day, not many.
            models.UniqueConstraint(
                fields=["account", "day", "meter", "model", "member"], name="usage_rollup_key", nulls_distinct=False
            ),
        ]
        indexes = [
            # Staff figures: every account's days in a range (usage by meter and
            # model, top organizations). `day` never changes on the roll-up's
            # upsert, so its updates stay HOT.
            models.Index(fields=["day"], name="usage_rollup_day"),
        ]


class UsageRunRollup(models.Model):
    """Usage per account, UTC day and workflow run: the charts by run and the
    per-workflow cost table."""

    account = models.ForeignKey(CreditAccount, on_delete=models.PROTECT, related_name="+", db_index=False)
    day = models.DateField()
    workflow_run_id = models.CharField(max_length=255, blank=True)
    credits_micros = models.BigIntegerField(default=0)
    events = models.BigIntegerField(default=0)
    first_at = models.DateTimeField()
    last_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["account", "day", "workflow_run_id"], name="usage_run_rollup_key"),
        ]


class RollupCursor(models.Model):
    """How far the roll-ups have got: every event created before `rolled_until`
    is in them, every later one is not (one row)."""

    rolled_until = models.DateTimeField()
    updated_at = models.DateTimeField(auto_now=True)
