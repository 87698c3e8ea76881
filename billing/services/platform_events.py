"""What billing tells the platform (outbound webhooks), built in one place.

Each is keyed by the Stripe object (or auto top-up attempt) it describes, so
Stripe delivering an event twice, or a handler running twice, sends once.
Called inside the billing transaction: the event commits with the change it
describes, and its deliveries are queued after commit.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from billing_project.api import iso_z
from outbound.services import event_send
from usage.units import credits_str

if TYPE_CHECKING:
    from billing.models import BillingState, TopUpAttempt
    from billing.stripe_data import InvoiceFacts


def subscription_updated(state: BillingState) -> None:
    data = {
        "subscription_id": state.subscription_id, "status": state.status, "plan": state.plan_code,
        "interval": state.interval or None, "current_period_start": iso_z(state.current_period_start),
        "current_period_end": iso_z(state.current_period_end), "cancel_at_period_end": state.cancel_at_period_end,
    }
    # Keyed by what the platform sees: a duplicate delivery (same state) is one
    # event; a real change (status, plan, period, cancellation) is a new one.
    key = "|".join(str(data[k]) for k in ("subscription_id", "status", "plan", "interval", "current_period_end",
                                          "cancel_at_period_end"))
    event_send(org_id=state.org_id, type="subscription.updated", data=data, key=key)


def invoice_paid(org_id: int, invoice: InvoiceFacts) -> None:
    event_send(org_id=org_id, type="invoice.paid", key=invoice.id, data={
        "invoice_id": invoice.id, "subscription_id": invoice.subscription_id,
        "period_start": iso_z(invoice.period_start), "period_end": iso_z(invoice.period_end),
    })


def invoice_payment_failed(org_id: int, invoice: InvoiceFacts, state: BillingState) -> None:
    event_send(org_id=org_id, type="invoice.payment_failed", key=invoice.id, data={
        "invoice_id": invoice.id, "subscription_id": invoice.subscription_id,
        "grace_ends_at": iso_z(state.grace_ends_at),
    })


def auto_topup_outcome(attempt: TopUpAttempt, type: str) -> None:
    """auto_topup.succeeded, auto_topup.failed or auto_topup.action_required for one attempt."""
    event_send(org_id=attempt.org_id, type=type, key=f"attempt:{attempt.pk}", data={
        "attempt_id": attempt.pk, "credits": credits_str(attempt.credits_micros),
        "amount_cents": attempt.amount_cents, "payment_intent_id": attempt.payment_intent_id or None,
        "failure_code": attempt.failure_code or None, "failure_message": attempt.failure_message or None,
        "retry_at": iso_z(attempt.retry_at),
    })
