"""Who pays for an organization's usage: its own balance (`member_usage: pool`)
or each member's personal balance (`member_usage: personal`, for public and
community organizations).

In personal mode a usage event or hold must name a member; it is priced on
the member's plan and written on the account of their personal organization,
labelled with the organization it was for (`for_org` on the event and the
hold). The organization's caps still apply: a member's spend for it is kept on
the organization's MemberSpend row, which the write locks after the personal
account (a fixed order: paying account, then that row), so concurrent events
cannot overrun a cap even though they never take the organization's lock.
An API key's monthly limit counts on the organization's KeySpend row the same
way, locked first of all (before any paying account: one batch pays from
several), so the full order is key row, paying accounts by organization id,
each one's member spend row.

Routed events always take the Python writer (`usage.services.events._record`),
never the one-statement debit in PostgreSQL: the SQL fast path knows nothing of
routing, and keeping it that way keeps it small.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.db.models import Q

from billing_project.errors import InvalidRequest
from orgs.models import MemberUsage, Membership, Role
from usage.errors import MemberPayer, MemberRequired
from accounts.models import OrgAPIKey
from usage.models import CreditAccount, Hold, HoldStatus, MemberSpendLimit
from usage.services import store
from usage.services.writer import Route, Writer, month_start

if TYPE_CHECKING:
    from datetime import datetime

    from accounts.models import User
    from orgs.models import Organization
    from usage.services.pricing import Prepared


def members_pay(org: Organization) -> bool:
    """Whether each member pays for their own usage of `org`. A personal
    organization pays for itself whatever the setting says."""
    return org.member_usage == MemberUsage.PERSONAL and not org.is_personal


@dataclass(frozen=True, slots=True)
class Payer:
    """A member's personal organization, paying for their usage of another."""

    org_id: int
    slug: str
    email: str


def payers_of(user_ids: set[int]) -> dict[int, Payer]:
    """Each user's personal organization, by user id (one query)."""
    rows = Membership.objects.filter(
        user_id__in=user_ids, org__is_personal=True, role=Role.OWNER,
    ).values_list("user_id", "org_id", "org__slug", "user__email")
    return {user_id: Payer(org_id, slug, email) for user_id, org_id, slug, email in rows}


def payers_assign(org: Organization, prepared: list[Prepared]) -> dict[int, Payer]:
    """Name the paying organization of each valid event of `org` (personal mode),
    or refuse it: 400 member_required when it names no member. Returns the
    payers by member id."""
    payers = payers_of({p.member.pk for p in prepared if p.error is None and p.member is not None})
    for p in prepared:
        if p.error is not None:
            continue
        if p.member is None:
            p.error = MemberRequired()
            continue
        payer = payers.get(p.member.pk)
        if payer is None:
            p.error = InvalidRequest(
                f"{p.member.email} has no personal organization to pay for their usage.", code="member_required"
            )
            continue
        p.payer_org_id = payer.org_id
        p.for_org_id = org.pk
    return payers


def payer_require(org: Organization, member: User | None) -> Payer:
    """The personal organization that pays for `member`'s usage of `org` (personal mode)."""
    if member is None:
        raise MemberRequired()
    payer = payers_of({member.pk}).get(member.pk)
    if payer is None:
        raise InvalidRequest(f"{member.email} has no personal organization to pay for their usage.",
                             code="member_required")
    return payer


def org_account_id(org: Organization) -> int:
    """The organization's account id, without locking it (its caps' spend rows hang off it)."""
    account_id = CreditAccount.objects.filter(org=org).values_list("pk", flat=True).first()
    if account_id is None:
        account_id = CreditAccount.objects.get_or_create(org=org)[0].pk
    return account_id


def route(writer: Writer, *, org: Organization, member: User, payer: Payer) -> None:
    """Make the write of `writer` (on `payer`'s locked account) one for `org`: its
    spend counts on `org`'s row for the member, and `org`'s cap for the member
    is what `require_affordable` checks. The caller holds the paying account's
    lock; the spend row is locked now, after it (the fixed order)."""
    account_id = org_account_id(org)
    writer.route = Route(org.pk, org.name, account_id, MemberPayer(payer.email, payer.slug))
    limit = MemberSpendLimit.objects.filter(account_id=account_id, member=member).values_list(
        "monthly_limit_micros", flat=True,
    ).first()
    if writer.loaded is None:
        writer.load(entries=0)
    writer.loaded.members.pop(member.pk, None)  # the personal account's own cap does not apply here
    if limit is None:
        return
    spent = store.member_spend_lock(account_id, member.pk, month_start(writer.now))
    # Open holds for the org: routed ones (all on this locked account), and any
    # left on the org's own account from before it switched to personal.
    held = Hold.objects.filter(member=member, status=HoldStatus.OPEN).filter(
        Q(for_org=org) | Q(account_id=account_id, for_org__isnull=True)
    ).reserved_sum()
    writer.loaded.members[member.pk] = {"limit": limit, "spent": spent, "held": held}


def key_budget_lock(org: Organization, prefix: str | None, now: datetime) -> store.KeyBudget | None:
    """The monthly limit of `org`'s API key `prefix` and what counts against it, for
    usage routed to members' personal accounts; None when the key has no limit.
    Locks the key's spend row of `org`'s account: call it before locking any paying
    account. A writer given it (`writer.key`) checks and counts the limit; writers of
    one batch share it, so each sees what the others spent."""
    if not prefix:
        return None
    limit = OrgAPIKey.objects.filter(org=org, prefix=prefix, monthly_limit_micros__isnull=False).values_list(
        "monthly_limit_micros", flat=True,
    ).first()
    if limit is None:
        return None
    account_id = org_account_id(org)
    spent = store.key_spend_lock(account_id, prefix, month_start(now))
    held = Hold.objects.filter(api_key_prefix=prefix, status=HoldStatus.OPEN).filter(
        Q(account_id=account_id, for_org__isnull=True) | Q(for_org=org)
    ).reserved_sum()
    return store.KeyBudget(prefix, limit, spent, held)
