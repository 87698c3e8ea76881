"""Promotions: the promotion codes buyers enter at Checkout, and promotional
credits staff grant by hand.

A promotion code (made in the Stripe dashboard, offered at Checkout when
STRIPE_ALLOW_PROMOTION_CODES is on) lowers the price, never the credits:
fulfilment grants what the catalog says and records what was actually paid.
Promotional credits are a PROMO grant with an expiry and a reason, written
with the staff user who granted them.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import TYPE_CHECKING, Any

import stripe
from django.db import transaction
from django.utils import timezone
from djstripe import models as djstripe_models

from billing import gateway
from billing_project.errors import InvalidRequest
from orgs.models import AuditEvent, Organization
from orgs.services import audit_record
from usage import services as usage_services
from usage.models import GrantSource, LedgerEntry
from usage.units import credits_str

if TYPE_CHECKING:
    from accounts.models import User

logger = logging.getLogger(__name__)

REASON_MAX_LENGTH = 500


def _code_of(value: Any) -> str:
    """A person's name for one promotion: the code they typed (FALL20), else the coupon's name or id."""
    if isinstance(value, dict):
        if value.get("object") == "coupon":
            return value.get("name") or value.get("id") or ""
        if value.get("code"):
            return value["code"]
        value = value.get("id") or ""
    if not value or not str(value).startswith("promo_"):
        return value or ""  # a coupon id: the dashboard's name for it
    synced = djstripe_models.PromotionCode.objects.filter(id=value).first()
    if synced is not None and (synced.stripe_data or {}).get("code"):
        return synced.stripe_data["code"]
    if not gateway.configured():
        return value
    try:
        return gateway.to_dict(stripe.PromotionCode.retrieve(value, **gateway.options())).get("code") or value
    except stripe.StripeError:
        # Only a label: the amounts are recorded whatever Stripe answers here.
        logger.warning("Could not read promotion code %s from Stripe; recorded by its id.", value)
        return value


def promotion_label(promotions: tuple[Any, ...] | list[Any]) -> str:
    """The codes applied to a session or invoice, as people read them ("FALL20", "FALL20, VIP")."""
    return ", ".join(code for code in (_code_of(p) for p in promotions) if code)[:255]


def promo_credits_grant(
    *, org: Organization, credits_micros: int, expires_at: datetime | None, reason: str, staff_user: User,
    idempotency_key: str | None = None,
) -> LedgerEntry:
    """Staff grant promotional credits: a PROMO grant that expires, with a required reason.

    Refuses (400, nothing written) a non-positive amount (`invalid_amount`), a
    missing or past expiry (`invalid_expiry`) and an empty reason
    (`reason_required`). The ledger entry carries the staff user and the
    reason; the audit trail gets `credits.granted` and `billing.promo_granted`.
    `idempotency_key` (the admin form's token) makes a resubmitted form grant once.
    """
    if not isinstance(credits_micros, int) or isinstance(credits_micros, bool) or credits_micros <= 0:
        raise InvalidRequest("Grant a positive number of credits.", code="invalid_amount",
                             fields={"credits": ["Enter more than zero credits."]})
    if expires_at is None:
        raise InvalidRequest("Promotional credits need an expiry.", code="invalid_expiry",
                             fields={"expires_at": ["This field is required."]})
    if expires_at <= timezone.now():
        raise InvalidRequest("The expiry must be in the future.", code="invalid_expiry",
                             fields={"expires_at": ["Choose a moment in the future."]})
    reason = (reason or "").strip()
    if not reason:
        raise InvalidRequest("Say why these credits are granted.", code="reason_required",
                             fields={"reason": ["This field is required."]})
    if len(reason) > REASON_MAX_LENGTH:
        raise InvalidRequest(f"Keep the reason under {REASON_MAX_LENGTH} characters.", code="invalid_request",
                             fields={"reason": [f"At most {REASON_MAX_LENGTH} characters."]})
    with transaction.atomic():
        entry = usage_services.credits_grant(
            org=org, amount_micros=credits_micros, source=GrantSource.PROMO, expires_at=expires_at,
            reason=f"Promotion: {reason}", staff_user=staff_user, actor=staff_user,
            idempotency_key=f"promo:{org.pk}:{idempotency_key}" if idempotency_key else None,
        )
        # A replayed form finds the entry granted the first time (the account's
        # lock is held until commit) and that grant's audit row.
        if not AuditEvent.objects.filter(org=org, action="billing.promo_granted", data__entry=entry.pk).exists():
            audit_record(org=org, action="billing.promo_granted", actor=staff_user, data={
                "credits": credits_str(credits_micros), "expires_at": expires_at.isoformat(), "reason": reason,
                "grant": entry.grant_id, "entry": entry.pk,
            })
    return entry
