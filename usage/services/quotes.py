"""Quotes: an estimate with a hold sized to its upper bound, whose prices are locked.

An agent about to start a run asks what it will cost and reserves that much in
one call (`POST /api/v1/estimates` with `"reserve": true`). The hold keeps the
prices of the moment (`Hold.locked_rates`, the rate card for the plan), and
usage recorded or captured against it, or against its children, is priced
from them (usage.services.pricing), so a change of the rate card during the
run does not change what the run was quoted.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

from django.db import transaction

from billing_project.errors import InvalidRequest
from usage.models import BillingMode, CreditAccount, Hold
from usage.selectors.estimates import Estimate, estimate
from usage.services import routing
from usage.services.holds import DEFAULT_HOLD_TTL, hold_create
from usage.services.limits import limit_refusals_announced
from usage.services.rates import current_card

if TYPE_CHECKING:
    from orgs.models import Organization
    from orgs.services import Actor


@dataclass(frozen=True)
class Quote:
    estimate: Estimate
    hold: Hold


@limit_refusals_announced()
@transaction.atomic
def quote_create(
    *,
    org: Organization,
    idempotency_key: str,
    workflow: str | None = None,
    items: list[dict] | None = None,
    billing_mode: str = BillingMode.PLATFORM_KEY,
    member=None,
    expires_in: timedelta = DEFAULT_HOLD_TTL,
    workflow_run_id: str = "",
    metadata: dict | None = None,
    request_fingerprint: str = "",
    actor: Actor = None,
) -> Quote:
    """Estimate a workflow or meter quantities on the paying account's plan and hold
    the upper bound (as `hold_create` does: 402 unless it can be covered), with the
    prices locked. A replayed idempotency key answers the first quote, at its
    prices, even if the card has changed since."""
    card = current_card()
    plan = _plan_of(org, member)
    first = Hold.objects.of_org(org).filter(idempotency_key=idempotency_key, locked_rates__isnull=False).first()
    rates = first.locked_rates if first is not None else card.snapshot(plan)
    quoted = estimate(plan_code=rates["plan"], workflow=workflow, items=items, billing_mode=billing_mode,
                      card=card.locked(rates))
    if quoted.high_micros <= 0:
        raise InvalidRequest("This estimate costs nothing: there is nothing to reserve.", code="nothing_to_reserve")
    hold = hold_create(
        org=org, amount_micros=quoted.high_micros, idempotency_key=idempotency_key, member=member,
        expires_in=expires_in, workflow_run_id=workflow_run_id, metadata=metadata,
        request_fingerprint=request_fingerprint, meters=[line.meter for line in quoted.lines],
        locked_rates=rates, actor=actor,
    )
    return Quote(quoted, hold)


def _plan_of(org: Organization, member) -> str:
    """The plan usage is priced on: the organization's, or (member_usage: personal)
    the member's own, whose balance pays."""
    org_id = routing.payer_require(org, member).org_id if routing.members_pay(org) else org.pk
    return CreditAccount.objects.filter(org_id=org_id).values_list("plan_code", flat=True).first() or "free"
