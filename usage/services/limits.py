"""Members' monthly spend caps.

A cap counts what the member spent this calendar month (UTC) plus what their
open holds reserve. The spend is kept per member and month by the debit path
itself (MemberSpend, under the account lock), so checking a cap costs one
indexed row read in the statement that already reads the grants.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from django.db import transaction

from accounts.models import User
from billing_project.errors import NotFound
from orgs.models import MANAGE_MEMBERS, Membership
from orgs.services import audit_record, role_require
from usage.errors import SpendLimitReached
from usage.happenings import happening_announce
from usage.models import MemberSpendLimit
from usage.services.writer import lock_account, require_non_negative
from usage.units import credits_str

if TYPE_CHECKING:
    from orgs.models import Organization


def limit_reached_announce(error: SpendLimitReached) -> None:
    """Tell the happenings seam that a cap refused a debit (usage.limit_reached)."""
    if error.happening is not None:
        happening_announce(error.happening)


@contextmanager
def limit_refusals_announced() -> Iterator[None]:
    """Around a service whose refusal rolls its transaction back: announce a
    cap's refusal on the way out, after that rollback (its on_commit callbacks
    are dropped with it), so the refusal is still told. As a decorator, place
    it above @transaction.atomic."""
    try:
        yield
    except SpendLimitReached as error:
        limit_reached_announce(error)
        raise


@transaction.atomic
def member_limit_set(
    *, org: Organization, member: User, monthly_limit_micros: int | None, actor: User | str | None = None
) -> MemberSpendLimit | None:
    """Set (or with None, remove) a member's monthly spend cap. Owners and admins only."""
    if isinstance(actor, User):
        role_require(org=org, user=actor, roles=MANAGE_MEMBERS, action="set spend limits")
    if not Membership.objects.filter(org=org, user=member).exists():
        raise NotFound("No such member.", code="member_not_found")
    if monthly_limit_micros is not None:
        require_non_negative(monthly_limit_micros, "A spend limit must be zero or more credits.", "invalid_amount")
    # Under the account lock, so a cap change and a debit never interleave.
    account = lock_account(org.pk)
    existing = MemberSpendLimit.objects.filter(account=account, member=member).first()
    previous = existing.monthly_limit_micros if existing else None
    set_by = actor if isinstance(actor, User) else None
    if monthly_limit_micros is None:
        if existing:
            existing.delete()
        result = None
    elif existing is None:
        result = MemberSpendLimit.objects.create(
            account=account, member=member, monthly_limit_micros=monthly_limit_micros, set_by=set_by,
        )
    else:
        # The row read above, under the account lock: update_or_create would read it again.
        existing.monthly_limit_micros = monthly_limit_micros
        existing.set_by = set_by
        existing.save(update_fields=["monthly_limit_micros", "set_by", "updated_at"])
        result = existing
    audit_record(
        org=org, action="member.spend_limit_set", actor=actor,
        data={
            "member": member.email,
            "limit": credits_str(monthly_limit_micros) if monthly_limit_micros is not None else None,
            "previous": credits_str(previous) if previous is not None else None,
        },
    )
    return result
