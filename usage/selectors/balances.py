"""Balances: an organization's credits, grants and transfers, and the reads billing
makes of them (alerts, overage, auto top-up). Nothing here writes or locks."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from django.db import connection
from django.db.models import (
    BooleanField,
    Exists,
    ExpressionWrapper,
    F,
    OuterRef,
    Q,
    QuerySet,
    TextChoices,
    Value,
)
from django.db.models.functions import Coalesce
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from usage.balance_changes import low_balance_micros
from usage.models import CreditAccount, EntryKind, Grant, GrantSource, LedgerEntry, Transfer
from usage.services import transfer_sendable_micros

if TYPE_CHECKING:
    from orgs.models import Organization


class BalanceStatus(TextChoices):
    OK = "ok", "OK"
    LOW = "low", "Low"
    DEPLETED = "depleted", "Empty"


def balance_status(available_micros: int, low_threshold_micros: int) -> BalanceStatus:
    if available_micros <= 0:
        return BalanceStatus.DEPLETED
    if available_micros < low_threshold_micros:
        return BalanceStatus.LOW
    return BalanceStatus.OK




@dataclass(frozen=True)
class GrantBalance:
    id: int
    source: str
    remaining_micros: int
    expires_at: datetime | None


@dataclass(frozen=True)
class BalanceSummary:
    balance_micros: int
    held_micros: int
    debt_micros: int
    plan_code: str
    overage_allowed: bool
    low_threshold_micros: int
    grants: list[GrantBalance] = field(default_factory=list)

    @property
    def available_micros(self) -> int:
        return self.balance_micros - self.held_micros

    @property
    def status(self) -> BalanceStatus:
        return balance_status(self.available_micros, self.low_threshold_micros)


_BALANCE_SQL = """
SELECT a.balance_micros, a.held_micros, a.debt_micros, a.plan_code, a.overage_allowed, a.low_balance_threshold_micros,
  (SELECT coalesce(json_agg(json_build_array(g.id, g.source, g.remaining_micros, g.expires_at)
                            ORDER BY g.expires_at ASC NULLS LAST, g.priority, g.created_at, g.id), '[]')
   FROM usage_grant g WHERE g.account_id = a.id AND g.remaining_micros > 0 AND (g.expires_at IS NULL OR g.expires_at > now()))
FROM usage_creditaccount a WHERE a.org_id = %s
"""


def balance_summary(org: Organization | int) -> BalanceSummary:
    """Balance, available, held, status and spendable grants: one indexed query,
    whatever the length of the ledger (the balance is a cached column)."""
    org_id = org if isinstance(org, int) else org.pk
    with connection.cursor() as cursor:
        cursor.execute(_BALANCE_SQL, [org_id])
        row = cursor.fetchone()
    if row is None:
        return BalanceSummary(0, 0, 0, "free", False, low_balance_micros())
    balance, held, debt, plan, overage, threshold, grants = row
    return BalanceSummary(
        balance, held, debt, plan, overage, low_balance_micros(threshold),
        [GrantBalance(g[0], g[1], g[2], parse_datetime(g[3]) if g[3] else None) for g in grants],
    )


# --- balances ----------------------------------------------------------------


def account_for(org_id: int) -> CreditAccount:
    """The org's account as stored, or an empty unsaved one if it has none yet
    (reads never create rows)."""
    return CreditAccount.objects.filter(org_id=org_id).first() or CreditAccount(org_id=org_id)


def live_grants(*, account: CreditAccount, now: datetime | None = None) -> list[Grant]:
    """Grants with credits left that have not expired, in the order usage burns them."""
    if account.pk is None:
        return []
    return list(Grant.objects.filter(account=account).spendable(now or timezone.now()).burn_order())


def sendable_micros(*, account: CreditAccount, grants: list[Grant]) -> int:
    """What the org could send right now: the same rule `credits_transfer`
    enforces under the lock, applied to an unlocked read of live grants."""
    return transfer_sendable_micros(account=account, grants=grants)


def recent_transfers(*, account_id: int, limit: int = 10) -> list[Transfer]:
    """Transfers the account sent or received, newest first, with both sides' orgs."""
    return list(
        Transfer.objects.filter(Q(from_account_id=account_id) | Q(to_account_id=account_id))
        .select_related("from_account__org", "to_account__org", "sent_by")
        .order_by("-created_at", "-id")[:limit]
    )


# --- for billing's alert sweep -------------------------------------------------


def _has_used() -> Q:
    """An account that has used credits: a usage entry (served by the
    entry_account_kind index), or credits held for a run under way."""
    usage = LedgerEntry.objects.filter(account_id=OuterRef("pk"), kind=EntryKind.USAGE)
    return Q(held_micros__gt=0) | Q(Exists(usage))


def account_has_used(account: CreditAccount) -> bool:
    """Whether the organization has ever used credits (or holds some for a run)."""
    return account.held_micros > 0 or LedgerEntry.objects.filter(account=account, kind=EntryKind.USAGE).exists()


def low_balances(*, limit: int) -> dict[int, int]:
    """Organizations that have used credits and whose available credits (balance
    less holds) are under their low-balance line, with those credits:
    {org_id: available_micros}, at most `limit`. One that never used anything
    is not running low, however small its balance."""
    return dict(
        CreditAccount.objects.annotate(
            available=F("balance_micros") - F("held_micros"),
            line=Coalesce("low_balance_threshold_micros", Value(low_balance_micros())),
        )
        .filter(available__lt=F("line"))
        .filter(_has_used())
        .values_list("org_id", "available")[:limit]
    )


ALLOWANCE_SOURCES = (GrantSource.PLAN_ALLOWANCE, GrantSource.TRIAL)


def allowances_mostly_used(*, now: datetime) -> QuerySet:
    """Each account's current allowance grant (plan allowance or trial, live, the
    newest) with 80% or more of it used, as rows of `org_id`, `grant_id` and
    `past_95` (95% or more used) and `past_100` (all of it used).

    A queryset of values rather than a list, so the caller can narrow it in the
    same query (billing leaves out the grants it has already alerted about)."""
    newer = Grant.objects.filter(
        account_id=OuterRef("account_id"), source__in=ALLOWANCE_SOURCES, expires_at__gt=now,
        created_at__gt=OuterRef("created_at"),
    )
    return (
        Grant.objects.filter(source__in=ALLOWANCE_SOURCES, expires_at__gt=now, amount_micros__gt=0)
        # used >= 80%  <=>  remaining <= 20% of the amount
        .filter(remaining_micros__lte=F("amount_micros") / 5)
        .exclude(Exists(newer))
        .annotate(
            org_id=F("account__org_id"),
            grant_id=F("pk"),
            past_95=ExpressionWrapper(Q(remaining_micros__lte=F("amount_micros") / 20), output_field=BooleanField()),
            past_100=ExpressionWrapper(Q(remaining_micros__lte=0), output_field=BooleanField()),
        )
        .values("org_id", "grant_id", "past_95", "past_100")
    )


# --- reads for billing ---------------------------------------------------------
# Billing reads balances and grants through these, never through usage's models.


@dataclass(frozen=True)
class AvailableBalance:
    available_micros: int
    low_threshold_micros: int

    @property
    def status(self) -> BalanceStatus:
        return balance_status(self.available_micros, self.low_threshold_micros)


def available_balance(org_id: int) -> AvailableBalance:
    """Available credits and the org's low-balance line, for the page header:
    one indexed row read (nothing and the default line before the first write)."""
    row = (
        CreditAccount.objects.filter(org_id=org_id)
        .values_list("balance_micros", "held_micros", "low_balance_threshold_micros")
        .first()
    )
    available = row[0] - row[1] if row else 0
    return AvailableBalance(available, low_balance_micros(row[2] if row else None))


def balance_micros_for(org_id: int) -> int | None:
    """The org's balance, or None while it has no credit account (no write yet)."""
    return CreditAccount.objects.filter(org_id=org_id).values_list("balance_micros", flat=True).first()


def overage_debt_micros(org_id: int) -> int:
    """The debt the org may be billed for as overage: its debt when its plan
    allows overage, else 0."""
    row = CreditAccount.objects.filter(org_id=org_id).values_list("overage_allowed", "debt_micros").first()
    return row[1] if row and row[0] else 0


def org_ids_in_overage(*, min_debt_micros: int, limit: int) -> list[int]:
    """Organizations allowed overage that owe at least `min_debt_micros`."""
    return list(
        CreditAccount.objects.filter(overage_allowed=True, debt_micros__gte=min_debt_micros)
        .values_list("org_id", flat=True)[:limit]
    )


def grants_unspent(*, org_id: int, source: str) -> list[Grant]:
    """The org's grants from `source` with credits left, expired or not."""
    return list(Grant.objects.filter(account__org_id=org_id, source=source, remaining_micros__gt=0))


def grant_latest_unexpired(*, org_id: int, source: str, now: datetime) -> Grant | None:
    """The org's newest grant from `source` that has not expired by `now`."""
    return (
        Grant.objects.filter(account__org_id=org_id, source=source, expires_at__gt=now)
        .order_by("-created_at").first()
    )
