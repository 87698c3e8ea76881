"""Staff actions on one organization's billing, taken from the back office's
customer page: extend a trial, send an invoice's link again. Each requires a
reason and writes its audit row in its own transaction (refunds are in
`refunds`, promotional credits in `promotions`)."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from django.db import transaction
from djstripe import models as djstripe_models

from billing.models import BillingState, BillingStatus
from billing.services.state import lock_state, notify_billing_managers
from billing_project.errors import Conflict, InvalidRequest, NotFound
from orgs.models import Organization
from orgs.services import audit_record, staff_reason_require
from usage import services as usage_services

if TYPE_CHECKING:
    from accounts.models import User

MAX_TRIAL_EXTENSION_DAYS = 90


@transaction.atomic
def trial_extend(*, org: Organization, days: int, reason: str, staff_user: User) -> BillingState:
    """Staff: push a running trial's end `days` later (1 to 90). The trial's
    allowance keeps pace (its grant expires at the new end); the reminder
    before the end is keyed by the end, so it is sent again for the new one.
    An organization not in a trial is a 409 `not_trialing`."""
    reason = staff_reason_require(reason)
    if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= MAX_TRIAL_EXTENSION_DAYS:
        raise InvalidRequest(f"Extend by 1 to {MAX_TRIAL_EXTENSION_DAYS} days.", code="invalid_request",
                             fields={"days": [f"Between 1 and {MAX_TRIAL_EXTENSION_DAYS}."]})
    state = lock_state(org.pk)
    if state.status != BillingStatus.TRIALING or state.trial_ends_at is None or state.subscription_id:
        raise Conflict("This organization is not in a trial.", code="not_trialing")
    previous = state.trial_ends_at
    state.trial_ends_at = previous + timedelta(days=days)
    state.current_period_end = state.trial_ends_at
    state.save(update_fields=["trial_ends_at", "current_period_end", "updated_at"])
    usage_services.grant_expiry_extend(org_id=org.pk, reference=f"trial:{org.pk}", expires_at=state.trial_ends_at,
                                       actor=staff_user)
    audit_record(org=org, action="billing.trial_extended", actor=staff_user, data={
        "days": days, "from": previous.isoformat(), "to": state.trial_ends_at.isoformat(), "reason": reason,
    })
    return state


@transaction.atomic
def invoice_link_resend(*, org: Organization, invoice_id: str, reason: str, staff_user: User) -> str:
    """Staff: e-mail the organization's billing contacts (owners, admins, billing
    managers) the link to one of its Stripe invoices, after commit. Another
    organization's invoice is a 404; one without a hosted page, 409. Returns the link."""
    reason = staff_reason_require(reason)
    state = BillingState.objects.filter(org=org).first()
    invoice = None
    if state is not None and state.customer_id:
        invoice = djstripe_models.Invoice.objects.filter(id=invoice_id, customer__id=state.customer_id).first()
    if invoice is None:
        raise NotFound("No such invoice for this organization.", code="invoice_not_found")
    data = invoice.stripe_data or {}
    link = data.get("hosted_invoice_url") or ""
    if not link:
        raise Conflict("Stripe has no page for this invoice (a draft?).", code="invoice_has_no_link")
    number = data.get("number") or invoice.id
    notify_billing_managers(
        org, f"Your invoice {number}",
        f"Here is the link to your invoice {number}, as you asked: {link}",
    )
    audit_record(org=org, action="billing.invoice_link_sent", actor=staff_user,
                 data={"invoice": invoice.id, "reason": reason})
    return link
