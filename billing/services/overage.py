"""Overage: usage past zero on a plan that allows it, billed in arrears.

The debt the ledger carries is reported to a Stripe Billing Meter in whole
credits (the meter's metered price bills them on the next invoice), and the
reported amount is then settled on the ledger by a grant that pays the debt
off: from then on Stripe owes the money, so a later purchase never pays for
the same usage a second time. Fractions of a credit wait for the next report.

A report is stored (committed) before it is sent; its identifier goes to
Stripe, which counts a re-sent event once, so a killed task re-sends safely.
Stripe dedupes identifiers (and idempotency keys) only for about 24 hours, so
a report still unsent after that is first looked up in what the meter counted
for the customer (its event summaries over the minutes the report's event can
carry); if it is there, the report is settled without sending it again.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone
from decimal import Decimal

import stripe
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from billing import gateway
from billing.models import BillingStatus, OverageReport
from billing.services.catalog import overage_meter_find
from billing.services.state import lock_state
from orgs.services import audit_record
from usage import selectors as usage_selectors
from usage import services as usage_services
from usage.models import GrantSource
from usage.units import MICROS_PER_CREDIT

logger = logging.getLogger(__name__)

# Stripe accepts meter events up to 35 days old.
MAX_EVENT_AGE = timedelta(days=34)
# Stripe dedupes meter event identifiers for at least 24 hours; past that, ask the meter before re-sending.
IDENTIFIER_WINDOW = timedelta(hours=23)


def overage_report(*, org_id: int) -> OverageReport | None:
    """Report the org's whole credits of debt (or re-send the report not yet confirmed)."""
    if not gateway.configured():
        return None
    with transaction.atomic():
        state = lock_state(org_id)
        report = OverageReport.objects.filter(org_id=org_id, sent_at__isnull=True).first()
        if report is None:
            debt_micros = usage_selectors.overage_debt_micros(org_id)
            billable = (
                debt_micros > 0 and state.customer_id and state.subscription_id
                and state.status in (BillingStatus.ACTIVE, BillingStatus.TRIALING, BillingStatus.PAST_DUE)
            )
            whole_credits = debt_micros // MICROS_PER_CREDIT if billable else 0
            if whole_credits <= 0:
                return None
            report = OverageReport.objects.create(
                org_id=org_id, identifier=f"tollgate-overage-{uuid.uuid4().hex}", credits=whole_credits,
                customer_id=state.customer_id,
            )
    now = timezone.now()
    if now - report.created_at > IDENTIFIER_WINDOW and _counted(report, now):
        logger.info("Overage report %s was counted by Stripe already; settling it without re-sending.",
                    report.identifier)
        return _settle(report.pk)
    stripe.billing.MeterEvent.create(
        event_name=settings.BILLING_OVERAGE_METER_EVENT,
        payload={"stripe_customer_id": report.customer_id, "value": str(report.credits)},
        identifier=report.identifier, timestamp=int(_event_time(report, now).timestamp()),
        **gateway.options(idempotency_key=report.identifier),
    )
    return _settle(report.pk)


def _event_time(report: OverageReport, sent_at: datetime) -> datetime:
    """The timestamp a report's meter event carries when sent at `sent_at`."""
    return max(report.created_at, sent_at - MAX_EVENT_AGE)


def _minute(moment: datetime) -> int:
    return int(moment.timestamp()) // 60 * 60


def _counted(report: OverageReport, now: datetime) -> bool:
    """Whether the meter already counted this report, from its event summaries
    for the customer over every minute the report's event can carry (from its
    creation to the latest time a send until now would have stamped). Sent
    reports of the customer made in those minutes are counted there too, so
    they are taken off first."""
    meter = overage_meter_find()
    if meter is None:
        return False
    start = _minute(report.created_at)
    end = _minute(_event_time(report, now)) + 60
    summaries = stripe.billing.Meter.list_event_summaries(
        meter["id"], customer=report.customer_id, start_time=start, end_time=end, **gateway.options(),
    )
    # A float in Stripe's JSON; the values summed are whole credits, so it is exact.
    counted = sum((Decimal(str(summary["aggregated_value"])) for summary in summaries.auto_paging_iter()), Decimal(0))
    others = sum(
        OverageReport.objects.filter(customer_id=report.customer_id, sent_at__isnull=False,
                                     created_at__gte=datetime.fromtimestamp(start, tz=dt_timezone.utc))
        .exclude(pk=report.pk).values_list("credits", flat=True)
    )
    return counted >= others + report.credits


@transaction.atomic
def _settle(report_id: int) -> OverageReport:
    report = OverageReport.objects.get(pk=report_id)
    state = lock_state(report.org_id)
    report = OverageReport.objects.select_for_update().get(pk=report_id)
    if report.sent_at is not None:
        return report
    amount = report.credits * MICROS_PER_CREDIT
    usage_services.credits_grant(
        org=state.org, amount_micros=amount, source=GrantSource.OVERAGE_INVOICED,
        idempotency_key=f"overage:{report.identifier}", stripe_object_id=report.identifier,
        reason=f"{report.credits} credits used past zero, billed on your next invoice",
        actor="task:billing.overage_report",
    )
    report.sent_at = timezone.now()
    report.save(update_fields=["sent_at"])
    audit_record(org=report.org_id, action="billing.overage_reported", actor="task:billing.overage_report",
                 data={"credits": report.credits, "identifier": report.identifier})
    return report


def overage_report_all(*, limit: int = 500) -> int:
    """Beat: report every overage account's debt (the trigger after each debit may have been lost)."""
    if not gateway.configured():
        return 0
    org_ids = usage_selectors.org_ids_in_overage(min_debt_micros=MICROS_PER_CREDIT, limit=limit)
    org_ids += list(OverageReport.objects.filter(sent_at__isnull=True).values_list("org_id", flat=True)[:limit])
    reported = 0
    for org_id in dict.fromkeys(org_ids):
        try:
            if overage_report(org_id=org_id) is not None:
                reported += 1
        except stripe.StripeError:
            logger.exception("Overage report for org %s failed; it will be re-sent.", org_id)
    return reported


