"""The ledger's side of reconciliation with Stripe: the entries that name a
Stripe object (a grant a payment paid for, a clawback of a refunded charge,
a dispute's freeze) and the accounts carrying overage debt. Billing's
`stripe_reconcile` holds them against dj-stripe's tables; nothing here
writes or locks."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime

from django.db.models import Count, Max, Sum

from usage.models import CreditAccount, EntryKind, LedgerEntry


@dataclass(frozen=True)
class GrantClaim:
    """A grant's entry and the Stripe object (or our own id) it names."""

    entry_id: int
    grant_id: int
    org_id: int
    source: str
    stripe_object_id: str
    amount_micros: int
    created_at: datetime


CLAIM_FIELDS = ("pk", "grant_id", "account__org_id", "grant__source", "stripe_object_id", "amount_micros",
                "created_at")


def grant_claim_pages(*, sources: Iterable[str], since: datetime | None = None, until: datetime | None = None,
                      page_size: int = 1000) -> Iterator[list[GrantClaim]]:
    """Grants from `sources` made in [since, until), with the Stripe object their entry names, a page at a time."""
    entries = LedgerEntry.objects.filter(kind=EntryKind.GRANT, grant__source__in=list(sources))
    if since is not None:
        entries = entries.filter(created_at__gte=since)
    if until is not None:
        entries = entries.filter(created_at__lt=until)
    last = 0
    while True:
        page = [GrantClaim(*row) for row in
                entries.filter(pk__gt=last).order_by("pk").values_list(*CLAIM_FIELDS)[:page_size]]
        if not page:
            return
        yield page
        last = page[-1].entry_id


def grant_claims_naming(*, sources: Iterable[str], stripe_object_ids: Iterable[str]) -> dict[str, list[GrantClaim]]:
    """The grants from `sources` whose entry names each of `stripe_object_ids`."""
    claims: dict[str, list[GrantClaim]] = defaultdict(list)
    rows = (LedgerEntry.objects.filter(kind=EntryKind.GRANT, grant__source__in=list(sources),
                                       stripe_object_id__in=list(set(stripe_object_ids)))
            .order_by("pk").values_list(*CLAIM_FIELDS))
    for row in rows:
        claim = GrantClaim(*row)
        claims[claim.stripe_object_id].append(claim)
    return dict(claims)


def grants_sharing_a_stripe_object(*, sources: Iterable[str], since: datetime | None = None,
                                   exclude_prefix: str = "sim_") -> dict[str, list[GrantClaim]]:
    """Stripe objects named by more than one grant from `sources` (one of them made since `since`)."""
    named = (LedgerEntry.objects.filter(kind=EntryKind.GRANT, grant__source__in=list(sources))
             .exclude(stripe_object_id="").exclude(stripe_object_id__startswith=exclude_prefix))
    shared = named.values("stripe_object_id").annotate(n=Count("pk"), last=Max("created_at")).filter(n__gt=1)
    if since is not None:
        shared = shared.filter(last__gte=since)
    return grant_claims_naming(sources=sources, stripe_object_ids=[row["stripe_object_id"] for row in shared])


def entry_totals_by_stripe_object(*, kind: str, stripe_object_ids: Iterable[str]) -> dict[str, int]:
    """The sum of `kind` entries per Stripe object they name (a clawback names its charge, a freeze its dispute)."""
    ids = list(set(stripe_object_ids))
    if not ids:
        return {}
    rows = (LedgerEntry.objects.filter(kind=kind, stripe_object_id__in=ids)
            .values("stripe_object_id").annotate(total=Sum("amount_micros")).values_list("stripe_object_id", "total"))
    return dict(rows)


@dataclass(frozen=True)
class OverageDebt:
    org_id: int
    account_id: int
    debt_micros: int
    last_entry_at: datetime | None


def overage_debts(*, min_debt_micros: int) -> list[OverageDebt]:
    """Accounts allowed overage that owe at least `min_debt_micros`, with the time of their latest entry."""
    accounts = (CreditAccount.objects.filter(overage_allowed=True, debt_micros__gte=min_debt_micros)
                .annotate(last_entry_at=Max("entries__created_at"))
                .values_list("org_id", "pk", "debt_micros", "last_entry_at").order_by("org_id"))
    return [OverageDebt(*row) for row in accounts]


def account_ids_by_org(org_ids: Iterable[int]) -> dict[int, int]:
    """Each organization's credit account id (for links to the account)."""
    return dict(CreditAccount.objects.filter(org_id__in=list(set(org_ids))).values_list("org_id", "pk"))


def credit_account_count() -> int:
    return CreditAccount.objects.count()
