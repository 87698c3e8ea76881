"""Reads of spending tokens and of the holds they spend from."""

from __future__ import annotations

from typing import TYPE_CHECKING


from billing_project.errors import NotFound
from usage.models import Hold, SpendingToken

if TYPE_CHECKING:
    from orgs.models import Organization


def hold_of_org(org: Organization, hold_id: int) -> Hold:
    """One of `org`'s holds, not locked: on its own account, or made for it on a
    member's personal account (member_usage: personal). Any other is 404, as in
    `usage.services.holds.hold_lock`."""
    hold = Hold.objects.of_org(org).filter(pk=hold_id).first()
    if hold is None:
        raise NotFound("No such hold.", code="hold_not_found")
    return hold


def spending_tokens(org: Organization, hold_id: int) -> list[SpendingToken]:
    """The tokens issued for one of `org`'s holds, newest first (404 for another org's hold)."""
    hold = hold_of_org(org, hold_id)
    return list(SpendingToken.objects.filter(hold=hold).select_related("hold", "api_key").order_by("-created_at", "-id"))
