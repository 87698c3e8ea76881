"""Auto top-up: when a debit leaves the balance under the org's threshold, buy
its chosen pack with the saved card, off-session.

Charging twice is the failure that matters, so every charge is a stored
TopUpAttempt first (committed before Stripe is called) whose idempotency key
goes to Stripe with the PaymentIntent. A task retried or killed at any point
re-sends the same request and Stripe answers with the same PaymentIntent.
Credits are granted only when the intent succeeded (confirmed on creation,
or by the payment_intent.succeeded webhook), once per attempt.

Declines back off (1 h, 6 h, 24 h, then stop and tell people); a card that
needs 3-D Secure stops top-ups and tells people; the monthly cap counts
every charge in flight or made this calendar month and is never exceeded.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import stripe
from celery import signature
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from accounts.models import User
from billing import gateway
from billing.errors import UnknownItem
from billing.models import (
    OPEN_ATTEMPT_STATUSES,
    AttemptStatus,
    AutoTopUpSettings,
    BillingState,
    Pack,
    Purchase,
    PurchaseKind,
    TopUpAttempt,
)
from billing.money import MAX_MONEY_CENTS, format_money
from billing.notifications import LINKS
from billing.selectors import cap_month_start, spent_this_month_cents
from billing.services import platform_events
from billing.services.notices import purchase_receipt_send
from billing.services.state import lock_state, notify_billing_managers
from billing.stripe_data import stripe_id
from billing_project.errors import InvalidRequest
from orgs.models import MANAGE_BILLING, Organization
from orgs.notifications import notification_send
from orgs.services import audit_record, role_require
from usage import selectors as usage_selectors
from usage import services as usage_services
from usage.models import GrantSource
from usage.units import credits_str

if TYPE_CHECKING:
    from orgs.services import Actor

logger = logging.getLogger(__name__)

# After the n-th decline in a row, wait this long before the next try; then stop.
BACKOFF = (timedelta(hours=1), timedelta(hours=6), timedelta(hours=24))
# An attempt still open after this long lost its task (a worker died, a broker
# lost the message); the retry sweep charges it again, with its same key.
STALE_AFTER = timedelta(minutes=10)
# Stripe keeps idempotency keys at least 24 hours; past that, look the intent up before re-sending.
IDEMPOTENCY_WINDOW = timedelta(hours=23)


@transaction.atomic
def auto_topup_configure(
    *, org: Organization, enabled: bool, threshold_micros: int, pack_code: str, monthly_cap_cents: int,
    actor: Actor = None,
) -> AutoTopUpSettings:
    """Save the org's auto top-up settings. Saving also clears a pause (a card
    that needed authentication, declines), so people retry by saving."""
    if isinstance(actor, User):
        role_require(org=org, user=actor, roles=MANAGE_BILLING, action="change auto top-up")
    pack = Pack.objects.filter(code=pack_code, active=True).first()
    if pack is None:
        raise UnknownItem(f"No credit pack “{pack_code}”.")
    if not isinstance(threshold_micros, int) or threshold_micros < 0:
        raise InvalidRequest("The threshold must be zero or more credits.", code="invalid_threshold")
    if isinstance(monthly_cap_cents, int) and monthly_cap_cents > MAX_MONEY_CENTS:
        raise InvalidRequest(f"The monthly cap may be at most {format_money(MAX_MONEY_CENTS, minor_units=True)}.",
                             code="invalid_cap")
    if not isinstance(monthly_cap_cents, int) or monthly_cap_cents < pack.amount_cents:
        raise InvalidRequest(
            f"The monthly cap must allow at least one pack of {pack.name} ({format_money(pack.amount_cents, minor_units=True)}).",
            code="cap_below_pack",
        )
    lock_state(org.pk)
    settings_row, _ = AutoTopUpSettings.objects.update_or_create(
        org=org,
        defaults={"enabled": enabled, "threshold_micros": threshold_micros, "pack": pack,
                  "monthly_cap_cents": monthly_cap_cents, "paused_reason": ""},
    )
    usage_services.account_set_auto_topup_threshold(org=org, threshold_micros=threshold_micros if enabled else None)
    audit_record(org=org, action="billing.auto_topup_configured", actor=actor, data={
        "enabled": enabled, "threshold": credits_str(threshold_micros), "pack": pack.code,
        "monthly_cap_cents": monthly_cap_cents,
    })
    if enabled:
        # Already below the new threshold: no debit will cross it, so check now.
        # Queued by name: billing.tasks calls these services, so importing it
        # here would close a cycle (BillingConfig.ready registers the tasks).
        check = signature("billing.auto_topup_check", args=(org.pk,))
        transaction.on_commit(check.delay)
    return settings_row


def _pause(settings_row: AutoTopUpSettings, reason: str) -> None:
    settings_row.paused_reason = reason[:255]
    settings_row.save(update_fields=["paused_reason", "updated_at"])
    usage_services.account_set_auto_topup_threshold(org=settings_row.org, threshold_micros=None)


def _new_attempt(org_id: int, *, number: int, now: datetime) -> TopUpAttempt | None:
    """Under the org's lock: a new attempt if top-up applies now, else None."""
    settings_row = AutoTopUpSettings.objects.select_related("pack", "org").filter(org_id=org_id).first()
    if settings_row is None or not settings_row.enabled or settings_row.paused_reason:
        return None
    balance_micros = usage_selectors.balance_micros_for(org_id)
    if balance_micros is None or balance_micros >= settings_row.threshold_micros:
        return None  # bought credits meanwhile, or a stale trigger
    pack = settings_row.pack
    if spent_this_month_cents(org_id, now) + pack.amount_cents > settings_row.monthly_cap_cents:
        already_told = TopUpAttempt.objects.filter(
            org_id=org_id, created_at__gte=cap_month_start(now), failure_code="monthly_cap_reached"
        ).exists()
        if not already_told:
            TopUpAttempt.objects.create(
                org_id=org_id, pack=pack, credits_micros=pack.credits_micros, amount_cents=0,
                idempotency_key=f"cap-{uuid.uuid4().hex}", status=AttemptStatus.CANCELED, number=number,
                failure_code="monthly_cap_reached", finished_at=now,
                failure_message="The monthly auto top-up cap is reached.",
            )
            notify_billing_managers(
                settings_row.org, "Auto top-up cap reached",
                "Auto top-up did not buy credits because this month's cap is reached. Raise the cap or top up "
                "by hand to keep running.",
            )
        return None
    return TopUpAttempt.objects.create(
        org_id=org_id, pack=pack, credits_micros=pack.credits_micros, amount_cents=pack.amount_cents,
        idempotency_key=f"tollgate-topup-{uuid.uuid4().hex}", number=number,
    )


def auto_topup_check(*, org_id: int) -> TopUpAttempt | None:
    """The task behind the low-balance trigger: start an attempt if one applies,
    or carry on the one already open (a retried task), then charge it."""
    if not (gateway.configured() or gateway.simulated()):
        return None
    with transaction.atomic():
        lock_state(org_id)
        attempt = TopUpAttempt.objects.filter(org_id=org_id, status__in=OPEN_ATTEMPT_STATUSES).first()
        if attempt is None:
            backing_off = TopUpAttempt.objects.filter(
                org_id=org_id, status=AttemptStatus.FAILED, retry_at__gt=timezone.now()
            ).exists()
            if backing_off:
                return None  # the retry sweep tries again when the back-off is over
            attempt = _new_attempt(org_id, number=1, now=timezone.now())
    if attempt is None:
        return None
    return topup_charge(attempt_id=attempt.pk)


def _default_payment_method(customer_id: str) -> str:
    customer = gateway.to_dict(stripe.Customer.retrieve(customer_id, **gateway.options()))
    default = stripe_id((customer.get("invoice_settings") or {}).get("default_payment_method"))
    if default:
        return default
    # No default set in the portal: the card saved by the last checkout.
    methods = stripe.PaymentMethod.list(customer=customer_id, type="card", limit=1, **gateway.options())
    return methods.data[0]["id"] if methods.data else ""


def _find_intent(attempt: TopUpAttempt, customer_id: str) -> dict | None:
    """An intent made for this attempt, looked up by its metadata (for attempts
    older than Stripe's idempotency window)."""
    since = int((attempt.created_at - timedelta(minutes=5)).timestamp())
    intents = stripe.PaymentIntent.list(customer=customer_id, created={"gte": since}, limit=100, **gateway.options())
    for intent in intents.auto_paging_iter():
        if (intent.get("metadata") or {}).get("tollgate_attempt") == str(attempt.pk):
            return gateway.to_dict(intent)
    return None


def _tax_calculation(attempt: TopUpAttempt, customer_id: str) -> tuple[str, int]:
    """Stripe Tax for the pack (exclusive of tax), made once per attempt. Without
    a usable customer address Stripe refuses; the charge then goes without tax
    and the log says so."""
    if attempt.tax_calculation_id:
        calc = stripe.tax.Calculation.retrieve(attempt.tax_calculation_id, **gateway.options())
        return calc["id"], int(calc["amount_total"])
    if not settings.BILLING_TAX_AUTO_TOPUP:
        return "", attempt.amount_cents
    try:
        calc = stripe.tax.Calculation.create(
            currency=attempt.pack.currency, customer=customer_id,
            line_items=[{"amount": attempt.amount_cents, "reference": attempt.pack.code, "tax_behavior": "exclusive"}],
            **gateway.options(idempotency_key=f"{attempt.idempotency_key}-tax"),
        )
    except stripe.InvalidRequestError as exc:
        logger.warning("No tax calculated for top-up %s: %s", attempt.pk, exc)
        return "", attempt.amount_cents
    TopUpAttempt.objects.filter(pk=attempt.pk).update(tax_calculation_id=calc["id"])
    return calc["id"], int(calc["amount_total"])


def topup_charge(*, attempt_id: int) -> TopUpAttempt:
    """Charge an open attempt off-session (again, with the same key, if it was charged before)."""
    attempt = TopUpAttempt.objects.select_related("pack", "org").get(pk=attempt_id)
    if attempt.status not in OPEN_ATTEMPT_STATUSES:
        return attempt
    if gateway.simulated():
        return topup_intent_update(attempt_id=attempt.pk, intent={
            "id": f"sim_pi_{attempt.idempotency_key}", "status": "succeeded", "metadata": {}}, simulated=True)
    state = BillingState.objects.filter(org_id=attempt.org_id).first()
    customer_id = state.customer_id if state else ""
    try:
        intent = None
        if attempt.payment_intent_id:
            intent = gateway.to_dict(stripe.PaymentIntent.retrieve(attempt.payment_intent_id, **gateway.options()))
        elif customer_id and timezone.now() - attempt.created_at > IDEMPOTENCY_WINDOW:
            intent = _find_intent(attempt, customer_id)
        if intent is None:
            payment_method = _default_payment_method(customer_id) if customer_id else ""
            if not payment_method:
                return _finish(attempt.pk, AttemptStatus.CANCELED, code="no_payment_method",
                               message="No saved card to charge. Buy credits once to save one, or add one in the billing portal.",
                               pause=True)
            calculation_id, amount = _tax_calculation(attempt, customer_id)
            params = {
                "amount": amount, "currency": attempt.pack.currency, "customer": customer_id,
                "payment_method": payment_method, "off_session": True, "confirm": True,
                "description": f"Tollgate auto top-up: {attempt.pack.name}",
                "metadata": {"tollgate_org_id": str(attempt.org_id), "tollgate_kind": "auto_topup",
                             "tollgate_attempt": str(attempt.pk), "tollgate_item": attempt.pack.code},
            }
            if calculation_id:
                params["hooks"] = {"inputs": {"tax": {"calculation": calculation_id}}}
            intent = gateway.to_dict(stripe.PaymentIntent.create(
                **params, **gateway.options(idempotency_key=attempt.idempotency_key)
            ))
    except stripe.CardError as exc:
        # Declines come back as errors carrying the intent; Stripe replays the
        # same error for the same key, so a retried task lands here again.
        error = exc.error
        intent = gateway.to_dict(error.payment_intent) if getattr(error, "payment_intent", None) else {
            "id": "", "status": "requires_payment_method", "metadata": {}}
        intent["last_payment_error"] = {"code": exc.code or "", "decline_code": getattr(error, "decline_code", "") or "",
                                        "message": exc.user_message or str(exc)}
    except stripe.StripeError:
        logger.exception("Auto top-up %s could not reach a decision with Stripe; it will be retried.", attempt.pk)
        raise
    return topup_intent_update(attempt_id=attempt.pk, intent=intent)


def _finish(attempt_id: int, status: str, *, code: str = "", message: str = "", pause: bool = False,
            retry: bool = False) -> TopUpAttempt:
    with transaction.atomic():
        attempt = TopUpAttempt.objects.select_related("org").get(pk=attempt_id)
        lock_state(attempt.org_id)
        attempt = TopUpAttempt.objects.select_for_update().select_related("org", "pack").get(pk=attempt_id)
        if attempt.status not in OPEN_ATTEMPT_STATUSES:
            return attempt
        _close(attempt, status, code=code, message=message, pause=pause, retry=retry)
    return attempt


def _close(attempt: TopUpAttempt, status: str, *, code: str, message: str, pause: bool, retry: bool) -> None:
    now = timezone.now()
    attempt.status = status
    attempt.failure_code = code[:64]
    attempt.failure_message = message[:500]
    attempt.finished_at = now
    settings_row = AutoTopUpSettings.objects.filter(org_id=attempt.org_id).select_related("org").first()
    if retry and attempt.number <= len(BACKOFF):
        attempt.retry_at = now + BACKOFF[attempt.number - 1]
    elif retry:
        pause = True
        message = f"The card was declined {attempt.number} times in a row ({message})."
    attempt.save()
    if status == AttemptStatus.FAILED:
        platform_events.auto_topup_outcome(attempt, "auto_topup.failed")
    elif status == AttemptStatus.ACTION_REQUIRED:
        platform_events.auto_topup_outcome(attempt, "auto_topup.action_required")
    audit_record(org=attempt.org_id, action=f"billing.auto_topup_{status}", actor="task:billing.auto_topup",
                 data={"attempt": attempt.pk, "code": code, "retry_at": attempt.retry_at.isoformat() if attempt.retry_at else None})
    if pause and settings_row is not None:
        _pause(settings_row, message)
    # One message per attempt (its key), whichever of the task and the webhook closes it.
    context = {"pack_name": attempt.pack.name, "reason": message, "retry_at": attempt.retry_at, "paused": pause}
    if status == AttemptStatus.ACTION_REQUIRED:
        notification_send("auto_topup_action_required", org=attempt.org, key=f"attempt:{attempt.pk}",
                          context={**context, "link": LINKS["auto_topup_action_required"]})
    elif status == AttemptStatus.FAILED:
        notification_send("auto_topup_failed", org=attempt.org, key=f"attempt:{attempt.pk}",
                          context={**context, "link": LINKS["auto_topup_failed"]})
    elif pause and settings_row is not None:
        notify_billing_managers(attempt.org, "Auto top-up stopped",
                                f"Auto top-up is paused: {message} Save your auto top-up settings to turn it back on.")


@transaction.atomic
def topup_intent_update(*, attempt_id: int | None = None, intent: dict, simulated: bool = False,
                        actor: Actor = "stripe") -> TopUpAttempt | None:
    """Apply a PaymentIntent's outcome to its attempt: from the task that made it,
    or from the payment_intent.* webhooks (either may come first, or twice)."""
    from_webhook = attempt_id is None
    meta = intent.get("metadata") or {}
    if from_webhook:
        attempt_id = int(meta["tollgate_attempt"]) if str(meta.get("tollgate_attempt", "")).isdigit() else None
        if attempt_id is None:
            found = TopUpAttempt.objects.filter(payment_intent_id=intent.get("id") or "-").values_list("pk", flat=True).first()
            if found is None:
                return None  # not an auto top-up (a checkout's intent, say)
            attempt_id = found
    attempt = TopUpAttempt.objects.filter(pk=attempt_id).first()
    if attempt is None:
        return None
    if from_webhook and (
        str(meta.get("tollgate_org_id", attempt.org_id)) != str(attempt.org_id)
        or attempt.payment_intent_id not in ("", intent.get("id"))
    ):
        # Metadata naming an attempt that is not this intent's: another deployment
        # sharing the Stripe account, or a hand-made intent. Never credit it here.
        logger.warning("Ignoring PaymentIntent %s: it does not belong to auto top-up %s.", intent.get("id"), attempt_id)
        return None
    lock_state(attempt.org_id)
    attempt = TopUpAttempt.objects.select_for_update().select_related("pack", "org").get(pk=attempt_id)
    if intent.get("id") and attempt.payment_intent_id != intent["id"]:
        attempt.payment_intent_id = intent["id"]
        attempt.save(update_fields=["payment_intent_id"])
    status = intent.get("status")
    if status == "succeeded":
        _fulfil(attempt, intent, simulated=simulated, actor=actor)
    elif attempt.status in OPEN_ATTEMPT_STATUSES:
        error = intent.get("last_payment_error") or {}
        code = error.get("decline_code") or error.get("code") or status or ""
        message = error.get("message") or "The card was declined."
        if status in ("requires_action",) or error.get("code") == "authentication_required":
            _close(attempt, AttemptStatus.ACTION_REQUIRED, code=code or "authentication_required", pause=True,
                   retry=False, message="Your bank asks you to confirm the payment (3-D Secure), which cannot "
                                        "happen while you are away. Top up by hand once, or use another card.")
        elif status in ("requires_payment_method", "canceled"):
            _close(attempt, AttemptStatus.FAILED, code=code, message=message, pause=False, retry=True)
        elif status == "processing" and attempt.status != AttemptStatus.PROCESSING:
            attempt.status = AttemptStatus.PROCESSING
            attempt.save(update_fields=["status"])
    return attempt


def _fulfil(attempt: TopUpAttempt, intent: dict, *, simulated: bool, actor: Actor) -> None:
    """Grant the pack's credits for a succeeded intent, once per attempt, whatever
    the attempt's status (a declined intent the customer later completed still paid)."""
    if attempt.purchase_id is not None:
        return
    entry = usage_services.credits_grant(
        org=attempt.org, amount_micros=attempt.credits_micros, source=GrantSource.AUTO_TOPUP,
        idempotency_key=f"topup:{attempt.pk}", stripe_object_id=intent.get("id", ""),
        reference=intent.get("id", ""), reason=f"Auto top-up: {attempt.pack.name}" + (" (simulated)" if simulated else ""),
        actor=actor,
    )
    purchase = Purchase.objects.create(
        org=attempt.org, kind=PurchaseKind.AUTO_TOPUP, pack=attempt.pack, credits_micros=attempt.credits_micros,
        amount_cents=attempt.amount_cents, currency=attempt.pack.currency,
        payment_intent_id=None if simulated else (intent.get("id") or None), grant=entry.grant, simulated=simulated,
    )
    attempt.purchase = purchase
    attempt.status = AttemptStatus.SUCCEEDED
    attempt.finished_at = timezone.now()
    attempt.retry_at = None
    attempt.save(update_fields=["purchase", "status", "finished_at", "retry_at"])
    purchase_receipt_send(purchase, what=f"{attempt.pack.name} (auto top-up)")
    platform_events.auto_topup_outcome(attempt, "auto_topup.succeeded")
    audit_record(org=attempt.org_id, action="billing.auto_topup_succeeded", actor=actor,
                 data={"attempt": attempt.pk, "credits": credits_str(attempt.credits_micros),
                       "payment_intent": intent.get("id"), "simulated": simulated})


def auto_topup_retry_due(*, now: datetime | None = None, limit: int = 200) -> int:
    """Beat: retry declined top-ups whose back-off is over (a new attempt, a new
    key) and re-charge attempts whose task was lost (the same key)."""
    now = now or timezone.now()
    charged = 0
    stale = TopUpAttempt.objects.filter(status__in=OPEN_ATTEMPT_STATUSES, created_at__lte=now - STALE_AFTER)
    for attempt_id in list(stale.values_list("pk", flat=True)[:limit]):
        charged += _charge_logged(attempt_id)
    due = TopUpAttempt.objects.filter(status=AttemptStatus.FAILED, retry_at__lte=now).order_by("retry_at")
    for failed_id, org_id in list(due.values_list("pk", "org_id")[:limit]):
        with transaction.atomic():
            lock_state(org_id)
            failed = TopUpAttempt.objects.select_for_update().get(pk=failed_id)
            if failed.retry_at is None or failed.retry_at > now:
                continue
            failed.retry_at = None  # this decline's retry is being made, once
            failed.save(update_fields=["retry_at"])
            if TopUpAttempt.objects.filter(org_id=org_id, status__in=OPEN_ATTEMPT_STATUSES).exists():
                continue
            attempt = _new_attempt(org_id, number=failed.number + 1, now=now)
        if attempt is not None:
            charged += _charge_logged(attempt.pk)
    return charged


def _charge_logged(attempt_id: int) -> bool:
    """One attempt of the sweep: Stripe being unreachable for one org must not
    stop the others' retries (the attempt stays open and the next sweep retries it)."""
    try:
        topup_charge(attempt_id=attempt_id)
    except stripe.StripeError:
        return False  # topup_charge has logged it
    return True
