"""The customer pages: a search, one page per organization, and its actions.

Each action is a small form on the page, posted to its own URL; the view checks
the staff member's permission (403 without it), parses the form and calls one
service in the app that owns the data, which requires the reason and writes the
audit row. A refused form shows the page again with its errors (400)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.views.decorators.http import require_POST

from backoffice.customers import forms as action_forms
from backoffice.customers import selectors
from backoffice.customers.selectors import CustomerPage
from billing import services as billing_services
from billing.models import BillingStatus, Purchase
from billing_project.errors import TollgateError
from billing_project.request_context import acting_as
from orgs import services as orgs_services
from orgs.models import Organization
from usage import services as usage_services
from usage.units import format_credits

VIEW_PERMISSION = "backoffice.view_customers"


@dataclass(frozen=True)
class Action:
    """One staff action: its title, the permission it needs, its form, and what it does
    (a function of the page, the form's cleaned data and the staff user, returning the message)."""

    title: str
    permission: str
    form: type[forms.Form]
    perform: Callable[[CustomerPage, dict, object], str]
    danger: bool = False


def _adjust(page: CustomerPage, data: dict, user) -> str:
    entry = usage_services.credits_adjust(
        org=page.org, amount_micros=data["credits"], reason=data["reason"], staff_user=user,
        expires_at=data["expires_at"], idempotency_key=f"staff-adjust:{data['token']}",
    )
    return f"Adjusted {page.org} by {format_credits(entry.amount_micros)} credits."


def _promo(page: CustomerPage, data: dict, user) -> str:
    entry = billing_services.promo_credits_grant(
        org=page.org, credits_micros=data["credits"], expires_at=data["expires_at"], reason=data["reason"],
        staff_user=user, idempotency_key=data["token"],
    )
    return f"Granted {format_credits(entry.amount_micros)} promotional credits, expiring {data['expires_at']:%Y-%m-%d %H:%M} UTC."


def _extend_trial(page: CustomerPage, data: dict, user) -> str:
    state = billing_services.trial_extend(org=page.org, days=data["days"], reason=data["reason"], staff_user=user)
    return f"The trial now ends {state.trial_ends_at:%Y-%m-%d %H:%M} UTC."


def _pause(page: CustomerPage, data: dict, user) -> str:
    orgs_services.org_usage_pause(org=page.org, reason=data["reason"], staff_user=user)
    return f"Usage of {page.org} is paused: its usage events and holds are refused (402 usage_paused)."


def _resume(page: CustomerPage, data: dict, user) -> str:
    orgs_services.org_usage_resume(org=page.org, reason=data["reason"], staff_user=user)
    return f"Usage of {page.org} is resumed."


def _refund(page: CustomerPage, data: dict, user) -> str:
    purchase = Purchase.objects.filter(org=page.org, pk=data["purchase"]).first()
    if purchase is None:
        raise Http404
    refund_id = billing_services.purchase_refund(purchase=purchase, reason=data["reason"], actor=user)
    return (f"Refund {refund_id} requested for {purchase}; its credits are clawed back when Stripe confirms it "
            "(charge.refunded).")


def _resend_invoice(page: CustomerPage, data: dict, user) -> str:
    billing_services.invoice_link_resend(org=page.org, invoice_id=data["invoice"], reason=data["reason"],
                                         staff_user=user)
    return f"The link to invoice {data['invoice']} is on its way to {page.org}'s billing contacts."


ACTIONS: dict[str, Action] = {
    "adjust": Action("Adjust credits", "backoffice.adjust_credits", action_forms.AdjustForm, _adjust),
    "promo": Action("Grant promotional credits", "backoffice.grant_promo", action_forms.PromoForm, _promo),
    "extend-trial": Action("Extend the trial", "backoffice.extend_trial", action_forms.TrialExtendForm, _extend_trial),
    "pause": Action("Pause usage", "backoffice.pause_usage", action_forms.ReasonForm, _pause, danger=True),
    "resume": Action("Resume usage", "backoffice.pause_usage", action_forms.ReasonForm, _resume),
    "refund": Action("Refund a purchase", "backoffice.refund_purchase", action_forms.RefundForm, _refund, danger=True),
    "resend-invoice": Action("Send an invoice link again", "backoffice.resend_invoice",
                             action_forms.InvoiceResendForm, _resend_invoice),
}


def _form(name: str, page: CustomerPage, data=None) -> forms.Form:
    kwargs: dict = {"prefix": name}
    if name == "refund":
        kwargs["purchases"] = page.refundable
    elif name == "resend-invoice":
        kwargs["invoices"] = [i for i in page.invoices if (i.stripe_data or {}).get("hosted_invoice_url")]
    return ACTIONS[name].form(data, **kwargs)


def _available(name: str, page: CustomerPage) -> bool:
    """Whether the action applies to this organization now (the page offers only those)."""
    state = page.state
    if name == "extend-trial":
        return state is not None and state.status == BillingStatus.TRIALING and not state.subscription_id
    if name == "pause":
        return page.org.usage_paused_at is None
    if name == "resume":
        return page.org.usage_paused_at is not None
    if name == "refund":
        return bool(page.refundable)
    if name == "resend-invoice":
        return any((i.stripe_data or {}).get("hosted_invoice_url") for i in page.invoices)
    return True


def _require_view(request: HttpRequest) -> None:
    if not request.user.has_perm(VIEW_PERMISSION):
        raise PermissionDenied


def _org(org_id: int) -> Organization:
    try:
        return selectors.customer_org(org_id)
    except Organization.DoesNotExist:
        raise Http404 from None


def customers_search(request: HttpRequest) -> HttpResponse:
    _require_view(request)
    query = request.GET.get("q", "").strip()
    results = list(selectors.customers_search(query)) if query else []
    context = {**admin.site.each_context(request), "title": "Customers", "query": query, "results": results,
               "limit": selectors.SEARCH_LIMIT}
    return TemplateResponse(request, "backoffice/customers/search.html", context)


def _render(request: HttpRequest, page: CustomerPage, failed: tuple[str, forms.Form] | None = None) -> HttpResponse:
    account = page.account
    actions = []
    for name, action in ACTIONS.items():
        if not _available(name, page):
            continue
        form = failed[1] if failed and failed[0] == name else _form(name, page)
        actions.append({"name": name, "action": action, "form": form,
                        "allowed": request.user.has_perm(action.permission),
                        "url": reverse("backoffice:customer_action", args=[page.org.pk, name])})
    context = {
        **admin.site.each_context(request), "title": page.org.name, "page": page,
        "figures": [("Balance", account.balance_micros), ("Available", account.available_micros),
                    ("Held", account.held_micros), ("Debt", account.debt_micros)],
        "actions": actions,
        "ledger_url": reverse("admin:usage_ledgerentry_changelist") + f"?account__id__exact={account.pk}"
        if account.pk else "",
        "audit_url": reverse("admin:orgs_auditevent_changelist") + f"?org__id__exact={page.org.pk}",
    }
    return TemplateResponse(request, "backoffice/customers/detail.html", context,
                            status=400 if failed else 200)


def customer_detail(request: HttpRequest, org_id: int) -> HttpResponse:
    _require_view(request)
    return _render(request, selectors.customer_page(_org(org_id)))


@require_POST
def customer_action(request: HttpRequest, org_id: int, action: str) -> HttpResponse:
    spec = ACTIONS.get(action)
    if spec is None:
        raise Http404
    if not (request.user.has_perm(VIEW_PERMISSION) and request.user.has_perm(spec.permission)):
        raise PermissionDenied
    page = selectors.customer_page(_org(org_id))
    form = _form(action, page, request.POST)
    if form.is_valid():
        try:
            with acting_as("admin"):
                message = spec.perform(page, form.cleaned_data, request.user)
        except TollgateError as error:
            form.add_error(None, error.message)
        else:
            messages.success(request, message)
            return redirect("backoffice:customer", org_id=page.org.pk)
    return _render(request, page, failed=(action, form))
