"""Members' spend and caps, and the org's provider keys, for the pages."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.db.models import Count, F, QuerySet, Sum
from django.utils import timezone

from orgs.models import Membership
from usage.models import Hold, HoldStatus, MemberSpend, MemberSpendLimit, ProviderKey, UsageEvent
from usage.services.writer import month_start

if TYPE_CHECKING:
    from orgs.models import Organization


# --- provider keys and member caps (for the pages) -----------------------------------


def provider_keys(org: Organization, *, include_revoked: bool = False) -> QuerySet:
    """The org's registered provider keys, newest first."""
    keys = ProviderKey.objects.filter(org=org)
    if not include_revoked:
        keys = keys.filter(revoked_at__isnull=True)
    return keys.order_by("-created_at")


@dataclass(frozen=True)
class MemberSpendRow:
    member_id: int
    email: str
    role: str
    spent_micros: int
    held_micros: int
    limit_micros: int | None

    @property
    def remaining_micros(self) -> int | None:
        if self.limit_micros is None:
            return None
        return max(self.limit_micros - self.spent_micros - self.held_micros, 0)


def member_spend(
    org: Organization, *, month=None, memberships: Iterable[Membership] | None = None
) -> list[MemberSpendRow]:
    """Each member's spend this calendar month (UTC), open holds and monthly cap.
    `memberships` are the org's, with their users, when the caller has read them already."""
    month = month or month_start(timezone.now())
    spent = dict(MemberSpend.objects.filter(account__org=org, month=month).values_list("member_id", "spent_micros"))
    held = dict(
        # The org's own holds, and those its members' personal balances hold for it (member_usage: personal).
        Hold.objects.of_org(org).filter(status=HoldStatus.OPEN, member__isnull=False)
        .values("member_id").annotate(total=Sum(F("amount_micros") - F("used_micros")))
        .values_list("member_id", "total")
    )
    limits = dict(MemberSpendLimit.objects.filter(account__org=org).values_list("member_id", "monthly_limit_micros"))
    if memberships is None:
        memberships = Membership.objects.filter(org=org).select_related("user").order_by("created_at")
    return [
        MemberSpendRow(m.user_id, m.user.email, m.role, spent.get(m.user_id, 0), held.get(m.user_id, 0), limits.get(m.user_id))
        for m in memberships
    ]


@dataclass(frozen=True)
class MemberUsageTotal:
    """What one member's personal balance paid for their usage of an organization."""

    member_id: int
    email: str
    credits_micros: int
    events: int


def member_usage_totals(*, org: Organization, since=None, until=None) -> list[MemberUsageTotal]:
    """Each member's usage of `org` paid from their personal balance (member_usage:
    personal), most credits first: totals only, never the balances that paid."""
    events = UsageEvent.objects.filter(for_org=org)
    if since is not None:
        events = events.filter(occurred_at__gte=since)
    if until is not None:
        events = events.filter(occurred_at__lt=until)
    rows = (
        events.values("member_id", "member__email")
        .annotate(credits=Sum("credits_micros"), events=Count("id"))
        .order_by("-credits", "member__email")
    )
    return [MemberUsageTotal(r["member_id"], r["member__email"], r["credits"], r["events"]) for r in rows]
