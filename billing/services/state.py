"""An organization's billing state row: the lock every billing change takes
first, the Stripe customer link, and notices to the people who pay."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import stripe
from django.db import IntegrityError, transaction
from djstripe import models as djstripe_models

from billing import gateway
from billing.models import BillingState
from orgs.models import Membership, Organization
from orgs.notifications import notification_send
from orgs.services import audit_record

if TYPE_CHECKING:
    from orgs.services import Actor

logger = logging.getLogger(__name__)


def lock_state(org_id: int) -> BillingState:
    """Lock the org's billing row for the rest of the transaction, creating it if needed.

    Billing services take this lock before the ledger's account lock, always
    in that order, so two billing changes for one org run one after the other
    (a webhook and a task, two deliveries of one event) and never deadlock.
    """
    state = BillingState.objects.select_for_update().filter(org_id=org_id).first()
    if state is None:
        try:
            with transaction.atomic():
                BillingState.objects.create(org_id=org_id)
        except IntegrityError:
            pass  # created concurrently; lock that one
        state = BillingState.objects.select_for_update().get(org_id=org_id)
    return state


def org_for_customer(customer_id: str | None, metadata: dict | None = None) -> Organization | None:
    """The organization behind a Stripe customer: our link first, else the org id
    we put in the metadata of everything we create (a customer made by a request
    that crashed before it could record the link)."""
    if customer_id:
        state = BillingState.objects.select_related("org").filter(customer_id=customer_id).first()
        if state is not None:
            return state.org
    org_id = (metadata or {}).get("tollgate_org_id")
    if org_id and str(org_id).isdigit():
        return Organization.objects.filter(pk=int(org_id)).first()
    return None


def customer_for_org(*, org: Organization, actor: Actor = None) -> djstripe_models.Customer:
    """The org's Stripe customer, created on first need and synced through dj-stripe."""
    state = BillingState.objects.filter(org=org).select_related("customer").first()
    if state is not None and state.customer is not None:
        return state.customer
    gateway.api_key()
    with transaction.atomic():
        state = lock_state(org.pk)
        if state.customer_id:
            existing = djstripe_models.Customer.objects.filter(id=state.customer_id).first()
            if existing is not None:
                return existing
        owner = (
            Membership.objects.filter(org=org, role="owner").select_related("user").order_by("created_at").first()
        )
        with gateway.translated_errors("create the customer"):
            # A stable idempotency key: a retry after a crash gets the same
            # customer back from Stripe instead of a second one. The org's
            # creation time keeps two Tollgates sharing one Stripe account
            # (staging and a laptop on the same test keys) from colliding.
            key = f"tollgate-customer-{org.pk}-{int(org.created_at.timestamp() * 1_000_000)}"
            data = stripe.Customer.create(
                name=org.name,
                email=owner.user.email if owner else None,
                metadata={"tollgate_org_id": str(org.pk), "tollgate_org": org.slug},
                **gateway.options(idempotency_key=key),
            )
            customer = djstripe_models.Customer.sync_from_stripe_data(gateway.to_dict(data), api_key=gateway.api_key())
        state.customer = customer
        state.save(update_fields=["customer", "updated_at"])
        audit_record(org=org, action="billing.customer_created", actor=actor, data={"customer": customer.id})
    return customer


def notify_billing_managers(org: Organization, subject: str, message: str) -> None:
    """Tell the org's owners, admins and billing managers, once the transaction commits
    (the `billing_notice` kind: `subject` and `message` are the caller's words)."""
    notification_send("billing_notice", org=org, context={"subject": subject, "message": message})
