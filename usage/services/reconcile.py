"""Reconciliation: every cached number against what the append-only rows add up to."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import F, Sum
from django.db.models.functions import Coalesce

from usage.models import CreditAccount, Grant, Hold, HoldStatus, LedgerEntry


@dataclass(frozen=True)
class Mismatch:
    org_id: int
    org_slug: str
    what: str
    cached_micros: int
    actual_micros: int


def ledger_reconcile(*, org_ids: list[int] | None = None) -> list[Mismatch]:
    """Prove every cached number equals what the append-only rows add up to."""
    accounts = CreditAccount.objects.select_related("org").order_by("pk")
    if org_ids is not None:
        accounts = accounts.filter(org_id__in=org_ids)
    account_ids = accounts.values("pk")

    def sums(queryset, field: str) -> dict[int, int]:
        rows = queryset.filter(account__in=account_ids).values("account").annotate(total=Sum(field))
        return {row["account"]: row["total"] for row in rows}

    entry_sums = sums(LedgerEntry.objects, "amount_micros")
    hold_sums = sums(Hold.objects.filter(status=HoldStatus.OPEN), F("amount_micros") - F("used_micros"))
    remaining_sums = sums(Grant.objects, "remaining_micros")
    mismatches = []
    for account in accounts.iterator():
        checks = [
            ("balance", account.balance_micros, entry_sums.get(account.pk, 0)),
            ("held", account.held_micros, hold_sums.get(account.pk, 0)),
            ("debt", account.debt_micros, remaining_sums.get(account.pk, 0) - account.balance_micros),
        ]
        mismatches += [
            Mismatch(account.org_id, account.org.slug, what, cached, actual)
            for what, cached, actual in checks
            if cached != actual
        ]
    drifted = (
        Grant.objects.filter(account__in=account_ids)
        .annotate(allocated=Coalesce(Sum("allocations__amount_micros"), 0))
        .exclude(allocated=F("remaining_micros"))
        .select_related("account__org")
    )
    for grant in drifted:
        org = grant.account.org
        mismatches.append(Mismatch(org.pk, org.slug, f"grant {grant.pk} remaining", grant.remaining_micros, grant.allocated))
    # An entry that debits usage events (a batch, a capture) debits exactly their charges.
    unmatched = (
        LedgerEntry.objects.filter(account__in=account_ids, usage_events__isnull=False)
        .annotate(charged=Sum("usage_events__credits_micros"))
        .exclude(amount_micros=-F("charged"))
        .select_related("account__org")
    )
    for entry in unmatched:
        org = entry.account.org
        mismatches.append(Mismatch(org.pk, org.slug, f"entry {entry.pk} vs its usage events", -entry.amount_micros, entry.charged))
    return mismatches
