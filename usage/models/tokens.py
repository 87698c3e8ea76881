"""Spending tokens: a credential that can do one thing, record usage against one hold.

An API key of the hold's organization issues a token for a tool it does not
want to trust with the key itself. The token records usage events against
that hold (or one of its children), within its ceiling and meters, until it
expires, is revoked or the hold ends; any other call with it is refused. Like
API keys, it is shown once and only its SHA-512 hash is kept.
"""

from __future__ import annotations

from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.db.models import F, Q
from django.utils import timezone

from usage.models.ledger import Hold
from usage.units import format_credits

# What every token starts with, so a caller (and our authentication) tells one
# from an API key at a glance.
TOKEN_PREFIX = "tgs_"


class SpendingToken(models.Model):
    # The organization whose API key issued it: the hold's (or, for a hold a
    # member's personal account pays, the organization it was made for).
    org = models.ForeignKey("orgs.Organization", on_delete=models.PROTECT, related_name="+")
    hold = models.ForeignKey(Hold, on_delete=models.PROTECT, related_name="spending_tokens")
    # The key that issued it: the token records as that key (its monthly limit,
    # meters and pause apply), and revoking the key stops the token.
    api_key = models.ForeignKey(
        "accounts.OrgAPIKey", null=True, blank=True, on_delete=models.PROTECT, related_name="+",
    )
    name = models.CharField(max_length=50, blank=True)
    # `tgs_` and 8 random characters: how a secret finds its row; shown in lists.
    prefix = models.CharField(max_length=16, unique=True, editable=False)
    hashed_key = models.CharField(max_length=150, editable=False)
    # At most this many micro-credits of usage in all, kept exact by the
    # recording under the account lock (usage.services.tokens).
    ceiling_micros = models.BigIntegerField()
    spent_micros = models.BigIntegerField(default=0)
    # The meter codes it may record; empty for every meter its key may record.
    meters = ArrayField(models.CharField(max_length=64), default=list, blank=True)
    expires_at = models.DateTimeField()
    created_at = models.DateTimeField(default=timezone.now)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(ceiling_micros__gt=0), name="spending_token_ceiling_positive"),
            models.CheckConstraint(condition=Q(spent_micros__gte=0), name="spending_token_spent_not_negative"),
            # The backstop of the ceiling: no write can take a token past it.
            models.CheckConstraint(condition=Q(spent_micros__lte=F("ceiling_micros")),
                                   name="spending_token_within_ceiling"),
        ]
        indexes = [
            # A hold's tokens, newest first (the list endpoint).
            models.Index(fields=["hold", "-created_at"], name="spending_token_hold_created"),
        ]

    def __str__(self) -> str:
        return f"Spending token {self.prefix} on hold {self.hold_id} ({format_credits(self.ceiling_micros)} credits)"

    @property
    def remaining_micros(self) -> int:
        return self.ceiling_micros - self.spent_micros

    def status_at(self, now) -> str:
        """active, revoked or expired (the hold's end is the hold's status)."""
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at <= now:
            return "expired"
        return "active"

    def status_with_hold_at(self, now) -> str:
        """`status_at`, or hold_closed for an active token whose hold was captured,
        released or expired (its `hold` is read)."""
        status = self.status_at(now)
        if status == "active" and (self.hold.status != "open" or self.hold.expires_at <= now):
            return "hold_closed"
        return status
