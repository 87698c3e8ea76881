"""The credit ledger: accounts, grants (buckets), append-only entries, holds, transfers.

Invariants, all checked by `ledger_reconcile` and the property tests:

* account.balance_micros == sum(entry.amount_micros) over the account's entries
* grant.remaining_micros == sum(allocation.amount_micros) over the grant's allocations
* account.balance_micros == sum(grant.remaining_micros) - account.debt_micros
  (debt is usage captured past zero that no grant covered yet; the next grant
  pays it off first)
* account.held_micros == sum(hold.amount_micros - hold.used_micros) over open
  holds (a hold's reservation shrinks as usage is recorded against it)
* 0 <= grant.remaining_micros <= grant.amount_micros

Entries and allocations are never updated or deleted (a PostgreSQL trigger
refuses it); a mistake is corrected by a compensating entry. The cached
columns (balance, debt, held, remaining) change only in the transaction that
writes the matching entries, under the account row lock.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.contrib.postgres.indexes import BrinIndex
from django.db import models
from django.db.models import F, Q

from usage.models.triggers import APPEND_ONLY
from usage.units import format_credits


class CreditAccount(models.Model):
    """One per organization: the cached balance every page and API call shows."""

    org = models.OneToOneField("orgs.Organization", on_delete=models.PROTECT, related_name="credit_account")
    balance_micros = models.BigIntegerField(default=0)
    debt_micros = models.BigIntegerField(default=0, help_text="Usage past zero not yet covered by a grant.")
    held_micros = models.BigIntegerField(default=0, help_text="Reserved by open holds.")
    # A copy of the org's plan, kept by billing through `account_set_plan`, so
    # the debit path prices and limits usage without reading billing's tables.
    plan_code = models.CharField(max_length=32, default="free")
    overage_allowed = models.BooleanField(
        default=False,
        help_text="Set from the plan: usage past zero is billed in arrears instead of refused with 402.",
    )
    # The plan's feature codes, written down by billing with the plan, so the
    # ledger refuses a meter that requires a feature (Meter.required_feature)
    # deciding on the same locked row it prices with.
    features = ArrayField(
        models.CharField(max_length=64), default=list, blank=True, help_text="Set from the plan: its feature codes."
    )
    # Kept by billing's auto top-up settings: a write that leaves the balance
    # below it schedules billing's top-up task (billing.receivers, through
    # usage.balance_changes).
    auto_topup_threshold_micros = models.BigIntegerField(
        null=True, blank=True, help_text="Auto top-up trigger; empty when auto top-up is off."
    )
    # The org's own "low balance" line (alert preferences); empty: the
    # deployment's LOW_BALANCE_CREDITS. On this row so the header indicator
    # stays one row read and the ledger hook sees it without a query.
    low_balance_threshold_micros = models.BigIntegerField(
        null=True, blank=True, help_text="Available credits below which the balance is low; empty: the default."
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(held_micros__gte=0), name="account_held_not_negative"),
            models.CheckConstraint(condition=Q(debt_micros__gte=0), name="account_debt_not_negative"),
            models.CheckConstraint(
                condition=Q(low_balance_threshold_micros__gte=0), name="account_low_threshold_not_negative"
            ),
        ]

    def __str__(self) -> str:
        return f"Credits of {self.org}"

    @property
    def available_micros(self) -> int:
        return self.balance_micros - self.held_micros


class GrantSource(models.TextChoices):
    TRIAL = "trial", "Trial"
    PLAN_ALLOWANCE = "plan_allowance", "Plan allowance"
    PURCHASE = "purchase", "Purchase"
    AUTO_TOPUP = "auto_topup", "Auto top-up"
    PROMO = "promo", "Promotion"
    TRANSFER_IN = "transfer_in", "Received transfer"
    ADJUSTMENT = "adjustment", "Adjustment"
    # Settles debt that was reported to Stripe as overage: the customer now owes
    # it on their invoice, so the ledger must not ask for it a second time.
    OVERAGE_INVOICED = "overage_invoiced", "Billed as overage"


# Credits a customer paid for may be sent to someone else; free credits and
# credits received from someone else may not (no laundering free credits
# through a chain of transfers).
TRANSFERABLE_SOURCES = frozenset({GrantSource.PURCHASE, GrantSource.AUTO_TOPUP})

# Within grants that expire at the same time, lower burns first: free credits
# go before paid ones.
DEFAULT_PRIORITY = {
    GrantSource.TRIAL: 10,
    GrantSource.PROMO: 20,
    GrantSource.PLAN_ALLOWANCE: 30,
    GrantSource.ADJUSTMENT: 40,
    GrantSource.TRANSFER_IN: 50,
    GrantSource.PURCHASE: 60,
    GrantSource.AUTO_TOPUP: 60,
    GrantSource.OVERAGE_INVOICED: 70,
}


class GrantQuerySet(models.QuerySet):
    def spendable(self, now) -> GrantQuerySet:
        return self.filter(remaining_micros__gt=0).filter(Q(expires_at__isnull=True) | Q(expires_at__gt=now))

    def burn_order(self) -> GrantQuerySet:
        # What expires first, then priority, then oldest.
        return self.order_by(F("expires_at").asc(nulls_last=True), "priority", "created_at", "id")


class Grant(models.Model):
    """A bucket of credits with a source, an optional expiry and a priority."""

    account = models.ForeignKey(CreditAccount, on_delete=models.PROTECT, related_name="grants")
    source = models.CharField(max_length=20, choices=GrantSource.choices)
    amount_micros = models.BigIntegerField()
    remaining_micros = models.BigIntegerField()
    frozen_micros = models.BigIntegerField(default=0, help_text="Taken out of use while a dispute is open.")
    expires_at = models.DateTimeField(null=True, blank=True)
    priority = models.IntegerField(default=50)
    reference = models.CharField(
        max_length=255, blank=True, help_text="What paid for or caused it: Stripe object id, plan period, transfer."
    )
    created_at = models.DateTimeField(auto_now_add=True)

    objects = GrantQuerySet.as_manager()

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(amount_micros__gt=0), name="grant_amount_positive"),
            models.CheckConstraint(
                condition=Q(remaining_micros__gte=0) & Q(remaining_micros__lte=F("amount_micros")),
                name="grant_remaining_within_amount",
            ),
            models.CheckConstraint(condition=Q(frozen_micros__gte=0), name="grant_frozen_not_negative"),
        ]
        indexes = [
            # The burn-order scan on every debit: an account's grants in burn order.
            # Deliberately not partial on remaining_micros > 0: a column in an index
            # predicate makes every debit's update of the grant a non-HOT update,
            # which bloats a busy account's index; exhausted grants are few and
            # filtered on the heap instead.
            models.Index(fields=["account", "expires_at", "priority", "created_at"], name="grant_burn_order"),
            # Staff figures: the month's grants by source. Grants are written in
            # time order, so a BRIN finds the month in a few pages and costs
            # next to nothing on each grant.
            BrinIndex(fields=["created_at"], name="grant_created_brin", autosummarize=True),
        ]

    def __str__(self) -> str:
        return f"{self.get_source_display()} {format_credits(self.amount_micros)} credits"

    @property
    def transferable(self) -> bool:
        return self.source in TRANSFERABLE_SOURCES


class EntryKind(models.TextChoices):
    GRANT = "grant", "Credits added"
    USAGE = "usage", "Usage"
    EXPIRY = "expiry", "Expired"
    TRANSFER_OUT = "transfer_out", "Sent"
    TRANSFER_IN = "transfer_in", "Received"
    CLAWBACK = "clawback", "Refund clawback"
    FREEZE = "freeze", "Frozen (dispute)"
    UNFREEZE = "unfreeze", "Unfrozen (dispute won)"
    ADJUSTMENT = "adjustment", "Adjustment"


class LedgerEntry(models.Model):
    """One change of one balance. Append-only."""

    # Every foreign key here is written on each entry and almost never searched
    # by: the account is covered by the composite indexes below, hold and
    # transfer by partial indexes of the few entries that have one; the rest
    # carry no index, to keep the hot insert cheap.
    account = models.ForeignKey(CreditAccount, on_delete=models.PROTECT, related_name="entries", db_index=False)
    kind = models.CharField(max_length=16, choices=EntryKind.choices)
    amount_micros = models.BigIntegerField(help_text="Signed: credits in are positive.")
    balance_after_micros = models.BigIntegerField()
    # The grant it touched, when it touched exactly one; allocations always
    # hold the full split (a debit can span several grants).
    grant = models.ForeignKey(Grant, null=True, blank=True, on_delete=models.PROTECT, related_name="+", db_index=False)
    # Who or what caused it.
    member = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+",
        help_text="The member the usage is attributed to.", db_index=False,
    )
    hold = models.ForeignKey(
        "usage.Hold", null=True, blank=True, on_delete=models.PROTECT, related_name="entries", db_index=False
    )
    transfer = models.ForeignKey(
        "usage.Transfer", null=True, blank=True, on_delete=models.PROTECT, related_name="entries", db_index=False
    )
    staff_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+", db_index=False
    )
    stripe_object_id = models.CharField(max_length=255, blank=True)
    reason = models.CharField(max_length=500, blank=True)
    idempotency_key = models.CharField(max_length=255, null=True, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name_plural = "ledger entries"
        constraints = [
            models.UniqueConstraint(fields=["account", "idempotency_key"], name="entry_idempotency_per_account"),
            models.CheckConstraint(condition=~Q(amount_micros=0), name="entry_amount_not_zero"),
        ]
        indexes = [
            # Ledger history, newest first, optionally by kind: pages and GET /ledger.
            models.Index(fields=["account", "-created_at", "-id"], name="entry_account_recent"),
            models.Index(fields=["account", "kind", "-created_at"], name="entry_account_kind"),
            # The history page's member filter (and per-member breakdowns), newest first.
            models.Index(fields=["account", "member", "-created_at", "-id"], name="entry_account_member"),
            models.Index(fields=["hold"], condition=Q(hold__isnull=False), name="entry_hold"),
            models.Index(fields=["transfer"], condition=Q(transfer__isnull=False), name="entry_transfer"),
            # Staff figures: the month's entries summed by kind, across accounts.
            # A BRIN (entries are appended in time order) keeps the hot insert
            # cheap, where a B-tree on created_at would not.
            BrinIndex(fields=["created_at"], name="entry_created_brin", autosummarize=True),
        ]
        triggers = [APPEND_ONLY]

    def __str__(self) -> str:
        return f"{self.kind} {format_credits(self.amount_micros)}"


class LedgerAllocation(models.Model):
    """How an entry split across grants. Append-only."""

    entry = models.ForeignKey(LedgerEntry, on_delete=models.PROTECT, related_name="allocations")
    grant = models.ForeignKey(Grant, on_delete=models.PROTECT, related_name="allocations")
    amount_micros = models.BigIntegerField()

    class Meta:
        constraints = [models.CheckConstraint(condition=~Q(amount_micros=0), name="allocation_amount_not_zero")]
        triggers = [APPEND_ONLY]


class HoldStatus(models.TextChoices):
    OPEN = "open", "Open"
    CAPTURED = "captured", "Captured"
    RELEASED = "released", "Released"
    EXPIRED = "expired", "Expired"


class HoldQuerySet(models.QuerySet):
    def of_org(self, org) -> HoldQuerySet:
        """`org`'s holds: on its own account, or made for it on a member's personal
        account (member_usage: personal). Not a hold its members' personal
        organizations hold for themselves, nor one held for another org."""
        return self.filter(Q(account__org=org, for_org__isnull=True) | Q(for_org=org))

    def reserved_sum(self) -> int:
        """What these holds still reserve: amount - used of each (call it on open
        holds). The SQL twin is in usage/sql/ledger_functions.sql and store.py."""
        return self.aggregate(total=models.Sum(F("amount_micros") - F("used_micros")))["total"] or 0


class Hold(models.Model):
    """Credits reserved before a run. Usage recorded against an open hold is
    debited at once and shrinks its reservation (`used_micros`); capturing
    debits what is still owed (more or less than held) and frees the rest;
    releasing or expiring frees it."""

    account = models.ForeignKey(CreditAccount, on_delete=models.PROTECT, related_name="holds")
    member = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    amount_micros = models.BigIntegerField()
    # The part of the reservation already spent by usage recorded against the
    # hold while open: what it still reserves is amount - used. Never more than
    # the amount: usage beyond it is a debit checked on its own.
    used_micros = models.BigIntegerField(default=0)
    # Every credit recorded against the hold while open (used, and what went
    # beyond the reservation), and what its children closed at: a capture with
    # no amount captures this.
    recorded_micros = models.BigIntegerField(default=0)
    # A child hold is carved out of its parent's reservation: the parent's
    # `used_micros` grows by the child's amount when it is made, and what the
    # child has left goes back to the parent when it closes. It never reserves
    # credits of the balance itself (usage.services.holds).
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="children", db_index=False,
    )
    depth = models.PositiveSmallIntegerField(default=0, help_text="0 for a hold made from the balance.")
    # A quote's prices (usage.services.quotes): the rate card for the plan as it
    # was when the estimate was made, so usage recorded or captured against the
    # hold is priced as quoted even if the card changes during the run. Its
    # children carry it too. Null: usage is priced at the rates of the moment.
    locked_rates = models.JSONField(null=True, blank=True)
    status = models.CharField(max_length=10, choices=HoldStatus.choices, default=HoldStatus.OPEN)
    captured_micros = models.BigIntegerField(null=True, blank=True)
    expires_at = models.DateTimeField()
    idempotency_key = models.CharField(max_length=255, null=True, blank=True)
    workflow_run_id = models.CharField(max_length=255, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    request_fingerprint = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    closed_at = models.DateTimeField(null=True, blank=True)
    # Set when the account is a member's personal one paying for usage of an
    # organization in `member_usage: personal` mode: the org it was for, whose
    # API keys capture and release it (usage.services.routing).
    for_org = models.ForeignKey(
        "orgs.Organization", null=True, blank=True, on_delete=models.PROTECT, related_name="+", db_index=False
    )
    # The API key that made it: while open it counts against that key's monthly
    # limit, and its capture is that key's spend (KeySpend).
    api_key_prefix = models.CharField(max_length=16, null=True, blank=True)

    objects = HoldQuerySet.as_manager()

    class Meta:
        constraints = [
            # Keys are the caller's: one space per account and the org the hold was for.
            models.UniqueConstraint(
                fields=["account", "idempotency_key", "for_org"], name="hold_idempotency_per_account",
                nulls_distinct=False, condition=Q(idempotency_key__isnull=False),
            ),
            models.CheckConstraint(condition=Q(amount_micros__gt=0), name="hold_amount_positive"),
            models.CheckConstraint(
                condition=Q(used_micros__gte=0) & Q(used_micros__lte=F("amount_micros")), name="hold_used_within_amount",
            ),
            models.CheckConstraint(condition=Q(recorded_micros__gte=0), name="hold_recorded_not_negative"),
        ]
        indexes = [
            models.Index(fields=["expires_at"], condition=Q(status="open"), name="hold_open_expiry"),
            # A member's open holds for an org (their cap there counts them).
            models.Index(fields=["for_org", "member"], condition=Q(status="open", for_org__isnull=False),
                         name="hold_open_for_org"),
            # A run's receipt: the holds reserved for one run (usage.selectors.receipts).
            models.Index(fields=["account", "workflow_run_id"], name="hold_account_run",
                         condition=~Q(workflow_run_id="")),
            models.Index(fields=["for_org", "workflow_run_id"], name="hold_for_org_run",
                         condition=Q(for_org__isnull=False) & ~Q(workflow_run_id="")),
            # What a limited key holds, read under the account lock (store.key_budget).
            models.Index(fields=["account", "api_key_prefix"], name="hold_open_by_key",
                         condition=Q(status="open", api_key_prefix__isnull=False)),
            # A parent's open children, settled when it closes and counted against the fan-out limit.
            models.Index(fields=["parent"], condition=Q(status="open", parent__isnull=False), name="hold_open_children"),
            # Every child of a hold, closed ones too (a run's receipt lists the holds carved from its own).
            models.Index(fields=["parent"], condition=Q(parent__isnull=False), name="hold_children"),
        ]

    def __str__(self) -> str:
        return f"Hold {self.pk} {format_credits(self.amount_micros)} ({self.status})"

    @property
    def left_micros(self) -> int:
        """What the hold still reserves (while open)."""
        return self.amount_micros - self.used_micros

    @staticmethod
    def capture_key(hold_id: int) -> str:
        """The idempotency key of the one ledger entry a hold's capture writes
        (usage.services.holds), by which a run's receipt finds it."""
        return f"hold:{hold_id}:capture"


class Transfer(models.Model):
    """Purchased credits sent from one organization to another, with a note."""

    from_account = models.ForeignKey(CreditAccount, on_delete=models.PROTECT, related_name="transfers_out")
    to_account = models.ForeignKey(CreditAccount, on_delete=models.PROTECT, related_name="transfers_in")
    amount_micros = models.BigIntegerField()
    note = models.CharField(max_length=280, blank=True)
    sent_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    idempotency_key = models.CharField(max_length=255)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["from_account", "idempotency_key"], name="transfer_idempotency_per_sender"),
            models.CheckConstraint(condition=Q(amount_micros__gt=0), name="transfer_amount_positive"),
            models.CheckConstraint(condition=~Q(from_account=F("to_account")), name="transfer_not_to_self"),
        ]
        triggers = [APPEND_ONLY]


class MemberSpendLimit(models.Model):
    """A member's monthly spend cap, set by the org's owners or admins."""

    account = models.ForeignKey(CreditAccount, on_delete=models.PROTECT, related_name="member_limits")
    member = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    monthly_limit_micros = models.BigIntegerField()
    set_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["account", "member"], name="member_limit_unique"),
            models.CheckConstraint(condition=Q(monthly_limit_micros__gte=0), name="member_limit_not_negative"),
        ]

    def __str__(self) -> str:
        return f"{self.member} ≤ {format_credits(self.monthly_limit_micros)} credits/month"


class MemberSpend(models.Model):
    """Credits a member spent in a calendar month (UTC), kept by the debit path
    under the account lock, so a cap check is one indexed row, exact under
    concurrency."""

    account = models.ForeignKey(CreditAccount, on_delete=models.PROTECT, related_name="+", db_index=False)
    member = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", db_index=False)
    month = models.DateField(help_text="First day of the month, UTC.")
    spent_micros = models.BigIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["account", "member", "month"], name="member_spend_unique")]


class KeySpend(models.Model):
    """Credits an API key that carries a monthly limit spent in a calendar month
    (UTC), kept by the Python writer under the account lock like MemberSpend,
    so a key's limit check is one indexed row. Seeded from the key's usage
    events when its limit is set (usage.services.keybudget)."""

    account = models.ForeignKey(CreditAccount, on_delete=models.PROTECT, related_name="+", db_index=False)
    api_key_prefix = models.CharField(max_length=16)
    month = models.DateField(help_text="First day of the month, UTC.")
    spent_micros = models.BigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["account", "api_key_prefix", "month"], name="key_spend_unique"),
        ]


# --- roll-ups for the usage charts ----------------------------------------------
