"""Billing's refusals, in the error envelope of DESIGN.md."""

from __future__ import annotations

from billing_project.errors import Conflict, InvalidRequest, NotFound, TollgateError


class StripeNotConfigured(TollgateError):
    status = 503
    type = "service_unavailable"
    code = "stripe_not_configured"
    default_message = (
        "Payments are not available: Stripe is not configured on this Tollgate "
        "(set STRIPE_SECRET_KEY and run `manage.py stripe_setup`)."
    )


class PaymentProviderError(TollgateError):
    """Stripe refused or could not be reached; nothing was charged by us."""

    status = 502
    type = "payment_provider_error"
    code = "payment_provider_error"
    default_message = "Stripe could not complete the request. Try again in a moment."


class UnknownItem(NotFound):
    code = "unknown_catalog_item"
    default_message = "No such plan or credit pack."


class NoSubscription(Conflict):
    code = "no_billing_account"
    default_message = "This organization has no Stripe customer yet: buy a plan or credits first."


class InvalidReturnTo(InvalidRequest):
    code = "invalid_return_to"
