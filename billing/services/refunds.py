"""Refunds and disputes of credit purchases.

A refund takes back the refunded share of the purchase's credits, never more
than the grant still holds; what was already spent is recorded as the
shortfall. A dispute freezes the credits in question until it closes: won,
they come back; lost, they stay out of use.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import stripe
from django.db import transaction
from django.db.models import Sum
from django.utils import timezone
from djstripe import models as djstripe_models

from billing import gateway
from billing.models import DisputeRecord, Purchase, RefundRecord
from billing.services.state import lock_state, notify_billing_managers
from billing.stripe_data import stripe_id
from billing_project.errors import InvalidRequest
from orgs.services import audit_record, staff_reason_require
from usage import services as usage_services
from usage.units import credits_str

if TYPE_CHECKING:
    from orgs.services import Actor

logger = logging.getLogger(__name__)


def _purchase_for(payment_intent_id: str) -> Purchase | None:
    if not payment_intent_id:
        return None
    return Purchase.objects.select_related("grant__account", "org").filter(payment_intent_id=payment_intent_id).first()


def refund_share_micros(credits_micros: int, part_cents: int, whole_cents: int) -> int:
    """The credits `part` of a `whole` charge paid for, rounded down; all of them for all of it."""
    if whole_cents <= 0 or part_cents >= whole_cents:
        return credits_micros
    return credits_micros * part_cents // whole_cents


@transaction.atomic
def charge_refunded(*, charge: dict, actor: Actor = "stripe") -> RefundRecord | None:
    """charge.refunded with Stripe's latest charge: claw back up to the charge's
    refunded share. `amount_refunded` is cumulative, so each new refund step
    takes back only what the steps before it did not, and a replay takes nothing."""
    purchase = _purchase_for(stripe_id(charge.get("payment_intent")))
    if purchase is None:
        return None  # not a credit purchase (a subscription invoice, say): nothing to claw back
    lock_state(purchase.org_id)
    refunded = int(charge.get("amount_refunded") or 0)
    if refunded <= 0:
        return None
    existing = RefundRecord.objects.filter(charge_id=charge["id"], amount_refunded_cents=refunded).first()
    if existing is not None:
        return existing
    target = refund_share_micros(purchase.credits_micros, refunded, int(charge.get("amount") or 0))
    already = RefundRecord.objects.filter(purchase=purchase).aggregate(total=Sum("requested_micros"))["total"] or 0
    step = target - already
    if step <= 0:
        return None  # an older refund step arriving late: later steps covered it
    clawback = usage_services.credits_clawback(
        grant=purchase.grant, amount_micros=step, idempotency_key=f"refund:{charge['id']}:{refunded}",
        stripe_object_id=charge["id"], reason=f"Refund of {purchase}", actor=actor,
    )
    record = RefundRecord.objects.create(
        org_id=purchase.org_id, purchase=purchase, charge_id=charge["id"], amount_refunded_cents=refunded,
        requested_micros=step, clawed_micros=clawback.clawed_micros, shortfall_micros=clawback.shortfall_micros,
    )
    audit_record(org=purchase.org_id, action="billing.refund_clawed_back", actor=actor, data={
        "charge": charge["id"], "refunded_cents": refunded, "requested": credits_str(step),
        "clawed": credits_str(clawback.clawed_micros), "shortfall": credits_str(clawback.shortfall_micros),
    })
    if clawback.shortfall_micros:
        logger.warning("Refund of %s left a shortfall of %s credits already spent (org %s).",
                       charge["id"], credits_str(clawback.shortfall_micros), purchase.org_id)
    return record


def _dispute_purchase(dispute: dict) -> tuple[Purchase | None, int]:
    """The disputed purchase, and the charge's amount (to size the share)."""
    charge_id = stripe_id(dispute.get("charge"))
    charge = djstripe_models.Charge.objects.filter(id=charge_id).first() if charge_id else None
    payment_intent_id = stripe_id(dispute.get("payment_intent")) or (
        stripe_id(charge.stripe_data.get("payment_intent")) if charge else ""
    )
    charge_amount = int(charge.stripe_data.get("amount") or 0) if charge else 0
    return _purchase_for(payment_intent_id), charge_amount


@transaction.atomic
def dispute_opened(*, dispute: dict, actor: Actor = "stripe") -> DisputeRecord | None:
    """charge.dispute.created: freeze the disputed share of the purchase's credits."""
    purchase, charge_amount = _dispute_purchase(dispute)
    if purchase is None:
        return None
    lock_state(purchase.org_id)
    record, created = DisputeRecord.objects.get_or_create(
        dispute_id=dispute["id"],
        defaults={"org_id": purchase.org_id, "purchase": purchase, "charge_id": stripe_id(dispute.get("charge")),
                  "amount_cents": int(dispute.get("amount") or 0), "status": dispute.get("status", "")},
    )
    if not created:
        return record
    amount = refund_share_micros(purchase.credits_micros, record.amount_cents, charge_amount or record.amount_cents)
    entry = usage_services.credits_freeze(
        grant=purchase.grant, amount_micros=amount, idempotency_key=f"dispute:{dispute['id']}:freeze",
        stripe_object_id=dispute["id"], reason="Payment disputed", actor=actor,
    ) if amount else None
    record.frozen_micros = -entry.amount_micros if entry else 0
    record.save(update_fields=["frozen_micros"])
    audit_record(org=purchase.org_id, action="billing.dispute_opened", actor=actor,
                 data={"dispute": dispute["id"], "frozen": credits_str(record.frozen_micros)})
    notify_billing_managers(
        purchase.org, "A payment was disputed",
        f"A payment for {purchase} was disputed with your bank; {credits_str(record.frozen_micros)} credits "
        "are frozen until the dispute is resolved.",
    )
    return record


@transaction.atomic
def dispute_closed(*, dispute: dict, actor: Actor = "stripe") -> DisputeRecord | None:
    """charge.dispute.closed: won gives the frozen credits back; lost leaves them out of use."""
    record = DisputeRecord.objects.select_related("purchase__grant__account").filter(dispute_id=dispute["id"]).first()
    if record is None:
        return None
    lock_state(record.org_id)
    record = DisputeRecord.objects.select_related("purchase__grant__account").get(pk=record.pk)
    if record.closed_at is not None:
        return record
    status = dispute.get("status", "")
    if status == "won" and record.frozen_micros:
        usage_services.credits_unfreeze(grant=record.purchase.grant, idempotency_key=f"dispute:{dispute['id']}:unfreeze",
                                stripe_object_id=dispute["id"], actor=actor)
    record.status = status
    record.closed_at = timezone.now()
    record.save(update_fields=["status", "closed_at"])
    audit_record(org=record.org_id, action="billing.dispute_closed", actor=actor,
                 data={"dispute": dispute["id"], "status": status})
    return record


def purchase_refund(*, purchase: Purchase, reason: str, actor: Actor = None) -> str:
    """Staff: refund a purchase in full through Stripe, saying why (400
    `reason_required` when not). Credits come back out when Stripe confirms
    (charge.refunded), through `charge_refunded`."""
    reason = staff_reason_require(reason)
    if purchase.simulated or not purchase.payment_intent_id:
        raise InvalidRequest("This purchase was not paid through Stripe; adjust credits instead.", code="not_refundable")
    with gateway.translated_errors("refund the payment"):
        refund = stripe.Refund.create(
            payment_intent=purchase.payment_intent_id, metadata={"tollgate_purchase": str(purchase.pk)},
            **gateway.options(idempotency_key=f"tollgate-refund-{purchase.payment_intent_id}-full"),
        )
    audit_record(org=purchase.org_id, action="billing.refund_requested", actor=actor,
                 data={"purchase": purchase.pk, "refund": refund["id"], "reason": reason})
    return refund["id"]
