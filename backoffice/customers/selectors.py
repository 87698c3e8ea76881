"""What the customer pages read: the search, and everything one organization's
page shows. Read only; each block is one bounded query (the newest rows first,
with a link to the whole list in the admin), so a customer with a long history
opens as fast as a new one."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db.models import Q, QuerySet
from djstripe import models as djstripe_models

from billing import selectors as billing_selectors
from billing.models import (
    AllowancePeriod,
    AutoTopUpSettings,
    BillingState,
    DisputeRecord,
    Purchase,
    RefundRecord,
    TopUpAttempt,
)
from inbox.models import InboxItem
from orgs.models import AuditEvent, Membership, NotificationOccurrence, Organization
from usage import selectors as usage_selectors
from usage.models import CreditAccount, Grant, Hold, HoldStatus, LedgerEntry

# How many of each kind of row the page shows; the admin lists hold the rest.
RECENT = 20
SEARCH_LIMIT = 50

# The audit actions that change an organization's plan or its status.
PLAN_ACTIONS = (
    "billing.trial_started", "billing.trial_extended", "billing.trial_ended", "billing.plan_changed",
    "billing.downgraded", "billing.grace_started", "billing.grace_resolved", "billing.subscription_ended",
)


def customers_search(query: str) -> QuerySet[Organization]:
    """Organizations matching `query`: a member's e-mail, the slug or the name
    (case-insensitive, in part), or the Stripe customer id (exactly)."""
    query = (query or "").strip()
    if not query:
        return Organization.objects.none()
    matches = Q(slug__icontains=query) | Q(name__icontains=query) | Q(memberships__user__email__icontains=query)
    if query.startswith("cus_"):
        matches |= Q(billing_state__customer__id=query)
    ids = Organization.objects.filter(matches).values("pk")
    return Organization.objects.filter(pk__in=ids).select_related("billing_state").order_by("name")[:SEARCH_LIMIT]


@dataclass(frozen=True)
class CustomerPage:
    """Everything one organization's page shows, newest first in each list."""

    org: Organization
    members: list[Membership]
    state: BillingState | None
    plan_periods: list[AllowancePeriod]
    plan_events: list[AuditEvent]
    account: CreditAccount
    grants: list[Grant]
    entries: list[LedgerEntry]
    open_holds: list[Hold]
    purchases: list[Purchase]
    invoices: list[Any]
    refunds: list[RefundRecord]
    disputes: list[DisputeRecord]
    auto_topup: AutoTopUpSettings | None
    topup_attempts: list[TopUpAttempt]
    notifications: list[InboxItem]
    occurrences: list[NotificationOccurrence]
    stripe_events: list[Any]
    audit: list[AuditEvent]

    @property
    def customer_id(self) -> str:
        return self.state.customer_id if self.state is not None and self.state.customer_id else ""

    @property
    def refundable(self) -> list[Purchase]:
        """Purchases paid through Stripe and not refunded in full yet."""
        refunded = {r.purchase_id for r in self.refunds if r.amount_refunded_cents >= (r.purchase.total_cents or
                                                                                         r.purchase.amount_cents)}
        return [p for p in self.purchases if p.payment_intent_id and not p.simulated and p.pk not in refunded]


def customer_org(org_id: int) -> Organization:
    """The organization, or Organization.DoesNotExist."""
    return Organization.objects.get(pk=org_id)


def stripe_events_for(customer_id: str, limit: int = RECENT) -> list[Any]:
    """dj-stripe's copies of the Stripe events about this customer: the customer
    itself, or an object (invoice, charge, subscription...) that names it."""
    if not customer_id:
        return []
    return list(
        djstripe_models.Event.objects.filter(Q(data__object__customer=customer_id) | Q(data__object__id=customer_id))
        .order_by("-created")[:limit]
    )


def customer_page(org: Organization) -> CustomerPage:
    state = BillingState.objects.filter(org=org).first()
    account = usage_selectors.account_for(org.pk)
    customer_id = state.customer_id if state is not None and state.customer_id else ""
    purchases = list(Purchase.objects.filter(org=org).select_related("pack").order_by("-created_at")[:RECENT])
    return CustomerPage(
        org=org,
        members=list(Membership.objects.filter(org=org).select_related("user").order_by("created_at")),
        state=state,
        plan_periods=list(AllowancePeriod.objects.filter(org=org).order_by("-period_start")[:RECENT]),
        plan_events=list(AuditEvent.objects.filter(org=org, action__in=PLAN_ACTIONS)[:RECENT]),
        account=account,
        grants=list(usage_selectors.live_grants(account=account)) if account.pk else [],
        entries=list(
            LedgerEntry.objects.filter(account=account).select_related("staff_user", "member")
            .order_by("-created_at", "-id")[:RECENT]
        ) if account.pk else [],
        open_holds=list(Hold.objects.filter(account=account, status=HoldStatus.OPEN).order_by("-created_at")[:RECENT])
        if account.pk else [],
        purchases=purchases,
        invoices=billing_selectors.invoices_for(org, limit=RECENT),
        refunds=list(RefundRecord.objects.filter(org=org).select_related("purchase").order_by("-created_at")[:RECENT]),
        disputes=list(DisputeRecord.objects.filter(org=org).order_by("-created_at")[:RECENT]),
        auto_topup=AutoTopUpSettings.objects.filter(org=org).select_related("pack").first(),
        topup_attempts=list(TopUpAttempt.objects.filter(org=org).select_related("pack").order_by("-created_at")[:RECENT]),
        notifications=list(InboxItem.objects.filter(org=org).select_related("user").order_by("-created_at")[:RECENT]),
        occurrences=list(NotificationOccurrence.objects.filter(org=org).order_by("-created_at")[:RECENT]),
        stripe_events=stripe_events_for(customer_id),
        audit=list(AuditEvent.objects.filter(org=org)[:RECENT]),
    )
