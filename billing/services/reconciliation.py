"""Reconciliation with Stripe: what Stripe was paid, as dj-stripe's tables hold
it, against what the ledger granted, clawed back and settled.

Each check goes both ways where both ways mean something:

* every paid Checkout Session (payment mode, ours), every succeeded payment
  intent of a purchase or auto top-up, and every paid subscription invoice
  that earns an allowance maps to exactly one grant; every grant that claims
  a Stripe payment (a purchase, an allowance of a Stripe invoice) maps to one
  that succeeded; no payment is named by two grants;
* every refunded charge of a purchase has its clawback (the refunded share
  of the credits, `RefundRecord` and its ledger entries), and every clawback a
  refund; every lost dispute of a purchase its credits frozen for good;
* overage debt on a billable account is reported to the meter, and each
  report sent is settled on the ledger by exactly one grant (and no
  settlement lacks its report); meter events are not in dj-stripe's tables,
  so the report Tollgate recorded as sent is the Stripe side;
* the cached balances equal the ledger (`usage.services.ledger_reconcile`,
  which this run folds in: beat runs this instead of that alone).

Objects and grants younger than `SETTLE` are left to the next run: their
webhook may still be on its way. The reads run in one REPEATABLE READ
snapshot when called outside a transaction, so a webhook committing half-way
cannot make a payment look ungranted. A run is stored when it starts and
finished with its findings in one transaction; drift is told to staff.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.contrib.auth import get_user_model
from django.db import connection, transaction
from django.db.models import Q, QuerySet
from django.utils import timezone
from djstripe import models as djstripe_models

from billing.models import (
    AllowancePeriod,
    BillingState,
    BillingStatus,
    CheckoutStart,
    DisputeRecord,
    DriftKind,
    OverageReport,
    Purchase,
    PurchaseKind,
    ReconciliationFinding,
    ReconciliationRun,
    RefundRecord,
    RunStatus,
)
from billing.money import format_money
from billing.services.fulfilment import PAID
from billing.services.refunds import refund_share_micros
from billing.stripe_data import invoice_facts, stripe_id, timestamp
from orgs.notifications import notification_send
from usage import services as usage_services
from usage.models import EntryKind, GrantSource
from usage.selectors import stripe_claims
from usage.units import MICROS_PER_CREDIT, credits_str

logger = logging.getLogger(__name__)

# Webhooks arrive within seconds, Stripe retries for days; an hour keeps a
# payment whose event is on its way (or a report the 15-minute beat will
# send) out of the findings.
SETTLE = timedelta(hours=1)
NOTIFICATION = "stripe_drift"
PAGE = "/admin/backoffice/reconciliation/"
PURCHASE_KINDS = frozenset({"pack", "credits", "auto_topup"})
PAID_SOURCES = (GrantSource.PURCHASE, GrantSource.AUTO_TOPUP, GrantSource.PLAN_ALLOWANCE)
OVERAGE_BILLABLE = (BillingStatus.ACTIVE, BillingStatus.TRIALING, BillingStatus.PAST_DUE)
CHUNK = 1000


@dataclass(frozen=True)
class Drift:
    kind: str
    message: str
    org_id: int | None = None
    stripe_id: str = ""
    stripe_model: str = ""
    stripe_pk: int | None = None
    local_model: str = ""
    local_pk: int | None = None


@dataclass(frozen=True)
class Window:
    """What one run looks at: made in [since, until)."""

    since: datetime | None
    until: datetime

    def stripe(self, queryset: QuerySet, *, updated: bool = False) -> QuerySet:
        """dj-stripe rows created in the window (or, `updated`, changed in it: a refund of an old charge)."""
        queryset = queryset.filter(created__lt=self.until)
        if self.since is not None:
            recent = Q(created__gte=self.since)
            if updated:
                recent |= Q(djstripe_updated__gte=self.since)
            queryset = queryset.filter(recent)
        return queryset

    def ours(self, queryset: QuerySet, field: str = "created_at") -> QuerySet:
        queryset = queryset.filter(**{f"{field}__lt": self.until})
        return queryset.filter(**{f"{field}__gte": self.since}) if self.since is not None else queryset


def _rows(queryset: QuerySet) -> list[tuple[int, str, dict]]:
    """(dj-stripe row, Stripe id, Stripe's data) of a few rows looked up by id."""
    return list(queryset.values_list("djstripe_id", "id", "stripe_data"))


def _stripe_pages(queryset: QuerySet, *fields: str) -> Iterator[list[tuple]]:
    """(dj-stripe row, Stripe id, *fields; by default Stripe's data), a page at a time
    by row, so memory holds one page; a scan names only the keys it reads."""
    fields = fields or ("stripe_data",)
    last = 0
    while True:
        page = list(queryset.filter(djstripe_id__gt=last).order_by("djstripe_id")
                    .values_list("djstripe_id", "id", *fields)[:CHUNK])
        if not page:
            return
        yield page
        last = page[-1][0]


def _data(model, pk: int) -> dict:
    """One row's full Stripe data, for the message about a drift found on a light scan."""
    return model.objects.filter(pk=pk).values_list("stripe_data", flat=True).first() or {}


def _pages(queryset: QuerySet) -> Iterator[list]:
    """Our own rows, a page at a time by primary key."""
    last = 0
    while True:
        page = list(queryset.filter(pk__gt=last).order_by("pk")[:CHUNK])
        if not page:
            return
        yield page
        last = page[-1].pk


def _value_pages(queryset: QuerySet) -> Iterator[list[tuple]]:
    """Rows of `values_list(...)` whose first value is the primary key, a page at a time by it."""
    last = 0
    while True:
        page = list(queryset.filter(pk__gt=last).order_by("pk")[:CHUNK])
        if not page:
            return
        yield page
        last = page[-1][0]


def _org_id(value) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _orgs_by_customer(customer_ids: Iterable[str]) -> dict[str, int]:
    ids = [c for c in set(customer_ids) if c]
    return dict(BillingState.objects.filter(customer_id__in=ids).values_list("customer_id", "org_id")) if ids else {}


def _states_by_org(org_ids: Iterable[int]) -> dict[int, int]:
    return dict(BillingState.objects.filter(org_id__in=list(set(org_ids))).values_list("org_id", "pk"))


# --- paid in Stripe -> granted -------------------------------------------------


def _check_sessions(window: Window) -> tuple[int, list[Drift]]:
    """Every paid Checkout Session that sells credits maps to its purchase and grant."""
    sessions = window.stripe(djstripe_models.Session.objects.filter(
        stripe_data__mode="payment", stripe_data__payment_status__in=sorted(PAID)))
    drifts: list[Drift] = []
    count = 0
    for chunk in _stripe_pages(sessions, "stripe_data__metadata__tollgate_kind"):
        count += len(chunk)
        ids = [session_id for _pk, session_id, _kind in chunk]
        starts = {sid: (pk, org_id) for sid, pk, org_id in
                  CheckoutStart.objects.filter(session_id__in=ids).values_list("session_id", "pk", "org_id")}
        purchases = {sid: row for sid, *row in Purchase.objects.filter(checkout_session_id__in=ids).values_list(
            "checkout_session_id", "pk", "org_id", "credits_micros", "grant__amount_micros")}
        for pk, session_id, kind in chunk:
            start = starts.get(session_id)
            if start is None and kind not in PURCHASE_KINDS:
                continue  # not a checkout Tollgate started (another product on the same account)
            purchase = purchases.get(session_id)
            if purchase is None:
                data = _data(djstripe_models.Session, pk)
                meta = data.get("metadata") or {}
                org_id = start[1] if start else (_org_id(meta.get("tollgate_org_id"))
                                                 or _orgs_by_customer([stripe_id(data.get("customer"))]).get(
                                                     stripe_id(data.get("customer"))))
                drifts.append(Drift(
                    DriftKind.PAID_WITHOUT_GRANT,
                    f"Checkout session paid ({data.get('payment_status')}, {_money(data.get('amount_total'), data)}) "
                    "but no credits were granted.",
                    org_id=org_id, stripe_id=session_id, stripe_model="session", stripe_pk=pk,
                    local_model="billing.checkoutstart" if start else "orgs.organization",
                    local_pk=start[0] if start else org_id,
                ))
            elif purchase[2] != purchase[3]:
                purchase_pk, org_id, bought, granted = purchase
                drifts.append(Drift(
                    DriftKind.GRANT_AMOUNT, f"Bought {credits_str(bought)} credits, granted {credits_str(granted)}.",
                    org_id=org_id, stripe_id=session_id, stripe_model="session", stripe_pk=pk,
                    local_model="billing.purchase", local_pk=purchase_pk,
                ))
    return count, drifts


def _check_payment_intents(window: Window) -> tuple[int, list[Drift]]:
    """Every succeeded payment intent of a purchase or auto top-up maps to its purchase.
    Intents a Checkout Session in dj-stripe's tables paid for are the session check's."""
    intents = window.stripe(djstripe_models.PaymentIntent.objects.filter(
        stripe_data__status="succeeded", stripe_data__metadata__tollgate_kind__in=sorted(PURCHASE_KINDS)))
    drifts: list[Drift] = []
    count = 0
    for chunk in _stripe_pages(intents, "stripe_data__metadata__tollgate_kind"):
        count += len(chunk)
        ids = [intent_id for _pk, intent_id, _kind in chunk]
        purchased = set(Purchase.objects.filter(payment_intent_id__in=ids).values_list("payment_intent_id", flat=True))
        by_session = set(djstripe_models.Session.objects.filter(payment_intent__in=ids)
                         .values_list("payment_intent", flat=True))
        for pk, intent_id, kind in chunk:
            if intent_id in purchased or intent_id in by_session:
                continue
            data = _data(djstripe_models.PaymentIntent, pk)
            org_id = _org_id((data.get("metadata") or {}).get("tollgate_org_id"))
            drifts.append(Drift(
                DriftKind.PAID_WITHOUT_GRANT,
                f"Payment intent succeeded ({kind}, {_money(data.get('amount_received'), data)}) "
                "but no credits were granted.",
                org_id=org_id, stripe_id=intent_id, stripe_model="paymentintent", stripe_pk=pk,
                local_model="orgs.organization" if org_id else "", local_pk=org_id,
            ))
    return count, drifts


def _invoice_earns_allowance(data: dict):
    """The invoice's facts when paying it should have granted a period's allowance, else None.

    Not: an invoice without one of our plans, a $0 invoice with no discount
    (a trial's), and one paid after its period ended (nothing left to spend;
    `allowance_grant` grants nothing for it)."""
    facts = invoice_facts(data)
    if not facts.subscription_id or facts.plan_price is None or facts.period_end is None:
        return None
    if facts.plan_price.allowance_micros <= 0 or (not facts.amount_paid_cents and not facts.discount_cents):
        return None
    paid_at = timestamp((data.get("status_transitions") or {}).get("paid_at")) or facts.created
    if paid_at is not None and facts.period_end <= paid_at:
        return None
    return facts


def _check_invoices(window: Window) -> tuple[int, list[Drift]]:
    """Every paid subscription invoice that earns an allowance maps to its allowance grant."""
    invoices = window.stripe(djstripe_models.Invoice.objects.filter(stripe_data__status="paid"))
    drifts: list[Drift] = []
    count = 0
    for chunk in _stripe_pages(invoices):
        count += len(chunk)
        earning = [(pk, invoice_id, facts) for pk, invoice_id, data in chunk
                   if (facts := _invoice_earns_allowance(data)) is not None]
        if not earning:
            continue
        periods = AllowancePeriod.objects.filter(
            Q(invoice_id__in=[invoice_id for _pk, invoice_id, _f in earning])
            | Q(subscription_id__in={facts.subscription_id for _pk, _id, facts in earning})
        ).values_list("invoice_id", "subscription_id", "period_end", "plan_code", "grant_id")
        by_invoice, by_period = {}, {}
        for invoice_id, subscription_id, period_end, plan_code, grant_id in periods:
            by_invoice[invoice_id] = grant_id
            by_period[(subscription_id, period_end, plan_code)] = grant_id
        orgs = _orgs_by_customer(facts.customer_id for _pk, _id, facts in earning)
        states = _states_by_org(orgs.values())
        # A plan change later in the same period replaces an earlier invoice's allowance (allowance_grant).
        latest: dict[tuple[int, datetime], datetime] = {}
        for org_id, period_end, created in AllowancePeriod.objects.filter(
            org_id__in=set(orgs.values()), period_end__in={facts.period_end for _pk, _id, facts in earning},
            invoice_created_at__isnull=False,
        ).values_list("org_id", "period_end", "invoice_created_at"):
            latest[(org_id, period_end)] = max(created, latest.get((org_id, period_end), created))
        for pk, invoice_id, facts in earning:
            key = (facts.subscription_id, facts.period_end, facts.plan_price.plan.code)
            if by_invoice.get(invoice_id) is not None or by_period.get(key) is not None:
                continue
            org_id = orgs.get(facts.customer_id)
            superseded = latest.get((org_id, facts.period_end))
            if superseded is not None and facts.created is not None and superseded > facts.created:
                continue
            drifts.append(Drift(
                DriftKind.PAID_WITHOUT_GRANT,
                f"Invoice paid for {facts.plan_price.plan.name} until {facts.period_end.date().isoformat()} "
                "but its allowance was not granted.",
                org_id=org_id, stripe_id=invoice_id, stripe_model="invoice", stripe_pk=pk,
                local_model="billing.billingstate" if org_id in states else "", local_pk=states.get(org_id),
            ))
    return count, drifts


# --- granted -> paid in Stripe ----------------------------------------------------


def _check_purchases(window: Window) -> tuple[int, list[Drift]]:
    """Every purchase paid through Stripe maps to a paid session or a succeeded intent."""
    drifts: list[Drift] = []
    count = 0
    purchases = window.ours(Purchase.objects.filter(simulated=False)).values_list(
        "pk", "org_id", "kind", "credits_micros", "checkout_session_id", "payment_intent_id")
    for chunk in _value_pages(purchases):
        count += len(chunk)
        sessions = {sid: (pk, state) for pk, sid, state in djstripe_models.Session.objects.filter(
            id__in=[row[4] for row in chunk if row[4]]).values_list("djstripe_id", "id", "stripe_data__payment_status")}
        intents = {iid: (pk, state) for pk, iid, state in djstripe_models.PaymentIntent.objects.filter(
            id__in=[row[5] for row in chunk if row[5]]).values_list("djstripe_id", "id", "stripe_data__status")}
        for purchase_pk, org_id, kind, credits_micros, session_id, intent_id in chunk:
            if session_id:
                stripe_object, model, found = session_id, "session", sessions.get(session_id)
                paid = found is not None and found[1] in PAID
            elif intent_id:
                stripe_object, model, found = intent_id, "paymentintent", intents.get(intent_id)
                paid = found is not None and found[1] == "succeeded"
            else:
                stripe_object, model, found, paid = "", "", None, False
            if paid:
                continue
            what = f"{PurchaseKind(kind).label} of {credits_str(credits_micros)} credits"
            said = f"is {found[1]}" if found else "is not in dj-stripe's tables"
            drifts.append(Drift(
                DriftKind.GRANT_WITHOUT_PAYMENT,
                f"{what} granted, but the payment {said}." if stripe_object
                else f"{what} granted without naming a Stripe payment.",
                org_id=org_id, stripe_id=stripe_object, stripe_model=model, stripe_pk=found[0] if found else None,
                local_model="billing.purchase", local_pk=purchase_pk,
            ))
    return count, drifts


def _check_allowances(window: Window) -> tuple[int, list[Drift]]:
    """Every allowance granted for a Stripe invoice maps to an invoice that was paid."""
    drifts: list[Drift] = []
    count = 0
    for chunk in _pages(window.ours(AllowancePeriod.objects.filter(grant__isnull=False, invoice_id__startswith="in_"))):
        count += len(chunk)
        invoices = {iid: (pk, data) for pk, iid, data in _rows(djstripe_models.Invoice.objects.filter(
            id__in=[p.invoice_id for p in chunk]))}
        for period in chunk:
            found = invoices.get(period.invoice_id)
            if found is not None and found[1].get("status") == "paid":
                continue
            said = f"is {found[1].get('status')}" if found else "is not in dj-stripe's tables"
            drifts.append(Drift(
                DriftKind.GRANT_WITHOUT_PAYMENT,
                f"The {period.plan_code} allowance until {period.period_end.date().isoformat()} was granted, "
                f"but its invoice {said}.",
                org_id=period.org_id, stripe_id=period.invoice_id, stripe_model="invoice",
                stripe_pk=found[0] if found else None, local_model="billing.allowanceperiod", local_pk=period.pk,
            ))
    return count, drifts


def _check_orphan_purchase_grants(window: Window) -> tuple[int, list[Drift]]:
    """Purchase and auto top-up grants with no purchase behind them claim a payment nobody recorded."""
    drifts: list[Drift] = []
    count = 0
    for chunk in stripe_claims.grant_claim_pages(sources=(GrantSource.PURCHASE, GrantSource.AUTO_TOPUP),
                                                 since=window.since, until=window.until, page_size=CHUNK):
        count += len(chunk)
        recorded = set(Purchase.objects.filter(grant_id__in=[c.grant_id for c in chunk]).values_list("grant_id", flat=True))
        for claim in chunk:
            if claim.grant_id in recorded:
                continue
            drifts.append(Drift(
                DriftKind.GRANT_WITHOUT_PAYMENT,
                f"{credits_str(claim.amount_micros)} credits granted as a {claim.source.replace('_', ' ')} "
                "with no purchase recorded for them.",
                org_id=claim.org_id, stripe_id=claim.stripe_object_id, local_model="usage.grant", local_pk=claim.grant_id,
            ))
    return count, drifts


def _check_granted_twice(window: Window) -> tuple[int | None, list[Drift]]:
    """No Stripe payment is named by two grants."""
    shared = stripe_claims.grants_sharing_a_stripe_object(sources=PAID_SOURCES, since=window.since)
    drifts = [
        Drift(
            DriftKind.GRANTED_TWICE,
            f"{len(claims)} grants ({', '.join(credits_str(c.amount_micros) for c in claims)} credits) "
            f"name the one payment {stripe_object}.",
            org_id=claims[-1].org_id, stripe_id=stripe_object, stripe_model=_model_of(stripe_object),
            stripe_pk=_stripe_pk(stripe_object), local_model="usage.grant", local_pk=claims[-1].grant_id,
        )
        for stripe_object, claims in shared.items()
    ]
    return None, drifts  # the grants themselves are counted by the purchase, allowance and grant checks


# --- refunds and lost disputes -> clawbacks ------------------------------------


def _check_refunds(window: Window) -> tuple[int, list[Drift]]:
    """Every refunded charge of a purchase has its clawback, on the records and on the ledger."""
    charges = window.stripe(djstripe_models.Charge.objects.filter(stripe_data__amount_refunded__gt=0), updated=True)
    drifts: list[Drift] = []
    count = 0
    for chunk in _stripe_pages(charges):
        count += len(chunk)
        purchases = {p.payment_intent_id: p for p in Purchase.objects.filter(
            payment_intent_id__in=[stripe_id(data.get("payment_intent")) for _pk, _id, data in chunk])}
        records: dict[str, list[RefundRecord]] = defaultdict(list)
        for record in RefundRecord.objects.filter(charge_id__in=[cid for _pk, cid, _d in chunk]).order_by("pk"):
            records[record.charge_id].append(record)
        clawed = stripe_claims.entry_totals_by_stripe_object(kind=EntryKind.CLAWBACK, stripe_object_ids=records)
        for pk, charge_id, data in chunk:
            purchase = purchases.get(stripe_id(data.get("payment_intent")))
            if purchase is None:
                continue  # not a credit purchase (a subscription's invoice): nothing to claw back
            refunded, amount = int(data.get("amount_refunded") or 0), int(data.get("amount") or 0)
            steps = records.get(charge_id, [])
            expected = refund_share_micros(purchase.credits_micros, refunded, amount)
            requested = sum(r.requested_micros for r in steps)
            problem = ""
            if not any(r.amount_refunded_cents == refunded for r in steps) and requested < expected:
                problem = (f"{_money(refunded, data)} refunded should take back {credits_str(expected)} credits; "
                           f"clawbacks asked for {credits_str(requested)}.")
            elif -clawed.get(charge_id, 0) != sum(r.clawed_micros for r in steps):
                problem = (f"Refund records clawed back {credits_str(sum(r.clawed_micros for r in steps))} credits; "
                           f"the ledger's clawbacks say {credits_str(-clawed.get(charge_id, 0))}.")
            if problem:
                drifts.append(Drift(
                    DriftKind.REFUND_NOT_CLAWED_BACK, problem, org_id=purchase.org_id, stripe_id=charge_id,
                    stripe_model="charge", stripe_pk=pk, local_model="billing.purchase", local_pk=purchase.pk,
                ))
    return count, drifts


def _check_clawbacks(window: Window) -> tuple[int, list[Drift]]:
    """Every clawback answers a refund Stripe holds."""
    drifts: list[Drift] = []
    count = 0
    for chunk in _pages(window.ours(RefundRecord.objects.all())):
        count += len(chunk)
        charges = {cid: (pk, data) for pk, cid, data in _rows(djstripe_models.Charge.objects.filter(
            id__in=[r.charge_id for r in chunk]))}
        for record in chunk:
            found = charges.get(record.charge_id)
            refunded = int(found[1].get("amount_refunded") or 0) if found else 0
            if refunded >= record.amount_refunded_cents:
                continue
            drifts.append(Drift(
                DriftKind.CLAWBACK_WITHOUT_REFUND,
                f"{credits_str(record.clawed_micros)} credits clawed back for a refund of "
                f"{record.amount_refunded_cents} cents; Stripe's charge shows {refunded} refunded.",
                org_id=record.org_id, stripe_id=record.charge_id, stripe_model="charge",
                stripe_pk=found[0] if found else None, local_model="billing.refundrecord", local_pk=record.pk,
            ))
    return count, drifts


def _check_lost_disputes(window: Window) -> tuple[int, list[Drift]]:
    """Every lost dispute of a purchase keeps the credits frozen when it opened frozen for good
    (what was spent before it opened could not be frozen, as a refund's shortfall)."""
    disputes = window.stripe(djstripe_models.Dispute.objects.filter(stripe_data__status="lost"), updated=True)
    drifts: list[Drift] = []
    count = 0
    for chunk in _stripe_pages(disputes):
        count += len(chunk)
        charge_ids = [stripe_id(data.get("charge")) for _pk, _id, data in chunk]
        charges = {cid: data for _pk, cid, data in _rows(djstripe_models.Charge.objects.filter(id__in=charge_ids))}
        intents = {dispute_id: stripe_id(data.get("payment_intent"))
                   or stripe_id(charges.get(stripe_id(data.get("charge")), {}).get("payment_intent"))
                   for _pk, dispute_id, data in chunk}
        purchases = {p.payment_intent_id: p for p in Purchase.objects.filter(payment_intent_id__in=list(intents.values()))}
        records = {r.dispute_id: r for r in DisputeRecord.objects.filter(dispute_id__in=list(intents))}
        frozen = stripe_claims.entry_totals_by_stripe_object(kind=EntryKind.FREEZE, stripe_object_ids=intents)
        unfrozen = stripe_claims.entry_totals_by_stripe_object(kind=EntryKind.UNFREEZE, stripe_object_ids=intents)
        for pk, dispute_id, data in chunk:
            purchase = purchases.get(intents[dispute_id])
            if purchase is None:
                continue  # not a credit purchase: nothing was granted to take back
            record = records.get(dispute_id)
            disputed = int(data.get("amount") or 0)
            if record is None:
                problem = f"Lost dispute of {_money(disputed, data)}: no credits were frozen for it."
            elif record.status != "lost" or record.closed_at is None:
                problem = f"Lost in Stripe, but recorded as {record.status or 'open'}."
            elif unfrozen.get(dispute_id):
                problem = f"Lost, yet {credits_str(unfrozen[dispute_id])} credits were unfrozen."
            elif record.frozen_micros != -frozen.get(dispute_id, 0):
                problem = (f"The record froze {credits_str(record.frozen_micros)} credits; "
                           f"the ledger's freeze says {credits_str(-frozen.get(dispute_id, 0))}.")
            else:
                continue
            drifts.append(Drift(
                DriftKind.DISPUTE_NOT_CLAWED_BACK, problem, org_id=purchase.org_id, stripe_id=dispute_id,
                stripe_model="dispute", stripe_pk=pk,
                local_model="billing.disputerecord" if record else "billing.purchase",
                local_pk=record.pk if record else purchase.pk,
            ))
    return count, drifts


# --- overage -> meter reports --------------------------------------------------


def _check_overage(window: Window) -> tuple[int, list[Drift]]:
    """Billable overage debt is reported; each report sent is settled once; no settlement lacks its report."""
    drifts: list[Drift] = []
    debts = stripe_claims.overage_debts(min_debt_micros=MICROS_PER_CREDIT)
    states = {s.org_id: s for s in BillingState.objects.filter(org_id__in=[d.org_id for d in debts])}
    waiting = set(OverageReport.objects.filter(sent_at__isnull=True).values_list("org_id", flat=True))
    for debt in debts:
        state = states.get(debt.org_id)
        billable = state is not None and state.customer_id and state.subscription_id and state.status in OVERAGE_BILLABLE
        settled = debt.last_entry_at is None or debt.last_entry_at < window.until
        if billable and settled and debt.org_id not in waiting:
            drifts.append(Drift(
                DriftKind.OVERAGE_NOT_REPORTED,
                f"{credits_str(debt.debt_micros)} credits of overage debt are not reported to the Stripe meter.",
                org_id=debt.org_id, stripe_id=state.customer_id, stripe_model="customer",
                stripe_pk=_stripe_pk(state.customer_id, model=djstripe_models.Customer),
                local_model="usage.creditaccount", local_pk=debt.account_id,
            ))
    for report in OverageReport.objects.filter(sent_at__isnull=True, created_at__lt=window.until).order_by("pk"):
        drifts.append(Drift(
            DriftKind.OVERAGE_NOT_REPORTED,
            f"A report of {report.credits} credits stored {report.created_at:%Y-%m-%d %H:%M} UTC was never sent.",
            org_id=report.org_id, stripe_id=report.identifier, local_model="billing.overagereport", local_pk=report.pk,
        ))
    count = len(debts)
    for chunk in _pages(window.ours(OverageReport.objects.filter(sent_at__isnull=False))):
        count += len(chunk)
        settlements = stripe_claims.grant_claims_naming(sources=(GrantSource.OVERAGE_INVOICED,),
                                                        stripe_object_ids=[r.identifier for r in chunk])
        for report in chunk:
            found = settlements.get(report.identifier, [])
            if len(found) == 1 and found[0].amount_micros == report.credits * MICROS_PER_CREDIT:
                continue
            said = ", ".join(credits_str(c.amount_micros) for c in found) or "nothing"
            drifts.append(Drift(
                DriftKind.OVERAGE_NOT_SETTLED,
                f"{report.credits} credits reported to the meter; the ledger settled {said}.",
                org_id=report.org_id, stripe_id=report.identifier, local_model="billing.overagereport",
                local_pk=report.pk,
            ))
    for chunk in stripe_claims.grant_claim_pages(sources=(GrantSource.OVERAGE_INVOICED,), since=window.since,
                                                 until=window.until, page_size=CHUNK):
        reported = set(OverageReport.objects.filter(sent_at__isnull=False,
                                                    identifier__in=[c.stripe_object_id for c in chunk])
                       .values_list("identifier", flat=True))
        for claim in chunk:
            if claim.stripe_object_id in reported:
                continue
            drifts.append(Drift(
                DriftKind.OVERAGE_NOT_SETTLED,
                f"{credits_str(claim.amount_micros)} credits of debt settled as billed overage with no report sent.",
                org_id=claim.org_id, stripe_id=claim.stripe_object_id, local_model="usage.grant",
                local_pk=claim.grant_id,
            ))
    return count, drifts


# --- cached balances -> ledger ----------------------------------------------------


def _check_ledger() -> tuple[int, list[Drift]]:
    mismatches = usage_services.ledger_reconcile()
    accounts = stripe_claims.account_ids_by_org(m.org_id for m in mismatches)
    drifts = [
        Drift(
            DriftKind.CACHED_BALANCE,
            f"{m.org_slug}: {m.what} cached {credits_str(m.cached_micros)}, the ledger says {credits_str(m.actual_micros)}.",
            org_id=m.org_id, local_model="usage.creditaccount", local_pk=accounts.get(m.org_id),
        )
        for m in mismatches
    ]
    return stripe_claims.credit_account_count(), drifts


def _model_of(stripe_object: str) -> str:
    prefix = stripe_object.split("_", 1)[0]
    return {"cs": "session", "pi": "paymentintent", "in": "invoice", "ch": "charge", "dp": "dispute",
            "du": "dispute", "cus": "customer"}.get(prefix, "")


def _stripe_pk(stripe_object: str, *, model=None) -> int | None:
    model = model or {"session": djstripe_models.Session, "paymentintent": djstripe_models.PaymentIntent,
                      "invoice": djstripe_models.Invoice, "charge": djstripe_models.Charge,
                      "dispute": djstripe_models.Dispute, "customer": djstripe_models.Customer,
                      }.get(_model_of(stripe_object))
    if model is None or not stripe_object:
        return None
    return model.objects.filter(id=stripe_object).values_list("djstripe_id", flat=True).first()


def _money(cents, data: dict) -> str:
    if cents is None:
        return "amount unknown"
    return format_money(int(cents), minor_units=True, currency_code=(data.get("currency") or "usd").upper())


CHECKS = (
    ("checkout_sessions", _check_sessions),
    ("payment_intents", _check_payment_intents),
    ("invoices", _check_invoices),
    ("purchases", _check_purchases),
    ("allowances", _check_allowances),
    ("purchase_grants", _check_orphan_purchase_grants),
    ("payments_granted_twice", _check_granted_twice),  # counts nothing of its own
    ("refunded_charges", _check_refunds),
    ("clawbacks", _check_clawbacks),
    ("lost_disputes", _check_lost_disputes),
    ("overage_debts_and_reports", _check_overage),
)


def _collect(window: Window) -> tuple[dict[str, int], list[Drift]]:
    checked: dict[str, int] = {}
    drifts: list[Drift] = []
    for name, check in CHECKS:
        count, found = check(window)
        if count is not None:
            checked[name] = count
        drifts += found
    checked["credit_accounts"], found = _check_ledger()
    drifts += found
    # A second grant for one payment is one drift, not also a grant without a purchase.
    twice = {d.local_pk for d in drifts if d.kind == DriftKind.GRANTED_TWICE}
    drifts = [d for d in drifts if not (d.kind == DriftKind.GRANT_WITHOUT_PAYMENT and d.local_model == "usage.grant"
                                        and d.local_pk in twice)]
    return checked, drifts


def _in_one_snapshot(window: Window) -> tuple[dict[str, int], list[Drift]]:
    if connection.in_atomic_block:
        return _collect(window)  # inside the caller's transaction (a test, a shell): its snapshot
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        return _collect(window)


def stripe_reconcile(*, since: datetime | None = None, trigger: str = "", settle: timedelta = SETTLE,
                     notify: bool = True) -> ReconciliationRun:
    """Check Stripe's payments, refunds, disputes and overage against the ledger, and the
    cached balances against the ledger; store the run and its findings and tell staff of drift."""
    run = ReconciliationRun.objects.create(since=since, trigger=trigger[:64])
    window = Window(since=since, until=run.started_at - settle)
    checked, drifts = _in_one_snapshot(window)
    with transaction.atomic():
        ReconciliationFinding.objects.bulk_create(
            ReconciliationFinding(run=run, kind=d.kind, org_id=d.org_id, message=d.message[:500],
                                  stripe_id=d.stripe_id, stripe_model=d.stripe_model, stripe_pk=d.stripe_pk,
                                  local_model=d.local_model, local_pk=d.local_pk)
            for d in drifts
        )
        run.checked = checked
        run.findings_count = len(drifts)
        run.status = RunStatus.DRIFT if drifts else RunStatus.CLEAN
        run.finished_at = timezone.now()
        run.save(update_fields=["checked", "findings_count", "status", "finished_at"])
        if drifts:
            logger.error("Reconciliation with Stripe %s found %s drift(s).", run.pk, len(drifts))
            if notify:
                _staff_tell(run, drifts)
    return run


def _staff_tell(run: ReconciliationRun, drifts: list[Drift]) -> None:
    """E-mail the run's drift to active staff (as the runaway breaker tells them), once per run."""
    emails = list(get_user_model().objects.filter(is_staff=True, is_active=True).exclude(email="")
                  .order_by("pk").values_list("email", flat=True))
    if not emails:
        return
    by_kind: dict[str, int] = defaultdict(int)
    for drift in drifts:
        by_kind[DriftKind(drift.kind).label] += 1
    notification_send(NOTIFICATION, emails=emails, key=f"run:{run.pk}", context={
        "run": run, "count": len(drifts), "by_kind": sorted(by_kind.items()),
        "examples": [d.message for d in drifts[:10]], "link": f"{PAGE}?run={run.pk}",
    })
