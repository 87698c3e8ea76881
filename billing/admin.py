"""Staff views of billing. The catalog is editable (push it to Stripe with
`manage.py sync_catalog`); everything that records money is read-only here,
because it changes only through the services (webhooks, tasks, pages)."""

import uuid

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from billing import services
from billing.models import (
    AllowancePeriod,
    AutoTopUpSettings,
    BillingState,
    CheckoutStart,
    DisputeRecord,
    OveragePrice,
    OverageReport,
    Pack,
    Plan,
    PlanPrice,
    Purchase,
    RefundRecord,
    TopUpAttempt,
)
from billing_project.admin_base import AmountsAdmin, ReadOnlyAdmin
from billing_project.errors import TollgateError
from billing_project.request_context import acting_as
from usage.units import AmountError, credits_to_micros, format_credits


# --- catalog ---------------------------------------------------------------


class PlanPriceInline(admin.TabularInline):
    model = PlanPrice
    extra = 0
    can_delete = False  # invoices and allowance periods name their price
    fields = ["interval", "amount_cents", "currency", "allowance_micros", "lookup_key", "stripe_price_id", "active"]
    readonly_fields = ["stripe_price_id"]


class CatalogAdmin(AmountsAdmin):
    """Plans, packs and prices are referenced by what was sold (PROTECT): retire
    them (untick "active") rather than delete them."""

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Plan)
class PlanAdmin(CatalogAdmin):
    list_display = ["name", "code", "overage_allowed", "members_limit", "api_keys_limit", "trial_days", "active",
                    "sort_order", "stripe_product_id"]
    list_editable = ["active", "sort_order"]
    readonly_fields = ["stripe_product_id"]
    inlines = [PlanPriceInline]

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        if change and "features" in form.changed_data:
            # Accounts on the plan refuse or allow gated meters from now on.
            services.plan_features_write_down(obj, actor=request.user)


@admin.register(Pack)
class PackAdmin(CatalogAdmin):
    list_display = ["name", "code", "credits_micros", "amount_cents", "currency", "active", "stripe_price_id"]
    list_editable = ["active"]
    readonly_fields = ["stripe_product_id", "stripe_price_id"]


@admin.register(OveragePrice)
class OveragePriceAdmin(CatalogAdmin):
    list_display = ["interval", "cents_per_credit", "currency", "lookup_key", "stripe_price_id"]
    readonly_fields = ["stripe_price_id"]


# --- organizations' billing -------------------------------------------------


class PromoGrantForm(forms.Form):
    """Staff grant promotional credits: how many, until when, and why (all required).
    `token` keys the grant, so a form sent twice grants once."""

    credits = forms.CharField(help_text="Whole or decimal credits, more than zero: 500, 12.5.")
    expires_at = forms.DateTimeField(help_text="UTC, in the future: 2027-01-31 or 2027-01-31 23:59. "
                                               "Unspent credits expire then.")
    reason = forms.CharField(max_length=500, widget=forms.Textarea(attrs={"rows": 3}),
                             help_text="Required. Kept on the ledger entry and in the audit trail.")
    token = forms.CharField(widget=forms.HiddenInput)

    def clean_credits(self) -> int:
        try:
            micros = credits_to_micros(self.cleaned_data["credits"])
        except AmountError as error:
            raise forms.ValidationError(str(error)) from None
        if micros <= 0:
            raise forms.ValidationError("Grant more than zero credits.")
        return micros

    def clean_reason(self) -> str:
        reason = self.cleaned_data["reason"].strip()
        if not reason:
            raise forms.ValidationError("Say why these credits are granted.")
        return reason


@admin.register(BillingState)
class BillingStateAdmin(ReadOnlyAdmin):
    list_display = ["org", "plan_code", "status", "interval", "current_period_end", "trial_ends_at", "grace_ends_at",
                    "customer_id"]
    list_filter = ["status", "plan_code", "interval"]
    search_fields = ["org__slug", "org__name", "customer__id", "subscription_id"]
    list_select_related = ["org"]
    change_form_template = "admin/billing/billingstate/change_form.html"

    def get_urls(self):
        return [
            path("<int:state_id>/grant-promo/", self.admin_site.admin_view(self.grant_promo_view),
                 name="billing_billingstate_grant_promo"),
            *super().get_urls(),
        ]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = {**(extra_context or {}),
                         "grant_promo_url": reverse("admin:billing_billingstate_grant_promo", args=[object_id])}
        return super().change_view(request, object_id, form_url, extra_context)

    def grant_promo_view(self, request, state_id: int):
        """Grant an organization promotional credits (a PROMO grant) with an expiry and a reason."""
        if not request.user.has_perm("usage.add_ledgerentry"):
            raise PermissionDenied
        state = get_object_or_404(BillingState.objects.select_related("org"), pk=state_id)
        form = PromoGrantForm(request.POST or None, initial={"token": uuid.uuid4().hex})
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            try:
                with acting_as("admin"):
                    entry = services.promo_credits_grant(
                        org=state.org, credits_micros=data["credits"], expires_at=data["expires_at"],
                        reason=data["reason"], staff_user=request.user, idempotency_key=data["token"],
                    )
            except TollgateError as error:
                form.add_error(None, error.message)
            else:
                messages.success(request, f"Granted {format_credits(entry.amount_micros)} promotional credits to "
                                          f"{state.org}, expiring {data['expires_at']:%Y-%m-%d %H:%M} UTC.")
                return redirect(reverse("admin:billing_billingstate_change", args=[state.pk]))
        context = {
            **self.admin_site.each_context(request), "title": f"Grant promotional credits to {state.org}",
            "state": state, "form": form, "opts": self.model._meta,
        }
        return TemplateResponse(request, "admin/billing/billingstate/grant_promo.html", context,
                                status=400 if request.method == "POST" else 200)


@admin.register(AutoTopUpSettings)
class AutoTopUpSettingsAdmin(ReadOnlyAdmin):
    list_display = ["org", "enabled", "threshold_micros", "pack", "monthly_cap_cents", "paused_reason", "updated_at"]
    list_filter = ["enabled"]
    search_fields = ["org__slug"]
    list_select_related = ["org", "pack"]


@admin.register(TopUpAttempt)
class TopUpAttemptAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "org", "pack", "amount_cents", "status", "number", "failure_code", "retry_at",
                    "payment_intent_id"]
    list_filter = ["status", "failure_code"]
    search_fields = ["org__slug", "payment_intent_id", "idempotency_key"]
    list_select_related = ["org", "pack"]
    date_hierarchy = "created_at"


@admin.register(Purchase)
class PurchaseAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "org", "kind", "pack", "amount_cents", "discount_cents", "promotion_code",
                    "total_cents", "payment_intent_id", "simulated", "customer_page"]
    list_filter = ["kind", "simulated"]
    search_fields = ["org__slug", "payment_intent_id", "checkout_session_id", "promotion_code"]
    list_select_related = ["org", "pack"]
    date_hierarchy = "created_at"
    # Refunds need a reason and a finance role: they are taken on the customer's
    # page in the back office (/admin/backoffice/customers/<org>/).

    @admin.display(description="customer page")
    def customer_page(self, purchase: Purchase) -> str:
        return format_html('<a href="{}">{}</a>', reverse("backoffice:customer", args=[purchase.org_id]), purchase.org)


@admin.register(RefundRecord)
class RefundRecordAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "org", "charge_id", "amount_refunded_cents", "requested_micros", "clawed_micros",
                    "shortfall_micros"]
    search_fields = ["org__slug", "charge_id"]
    list_select_related = ["org"]


@admin.register(DisputeRecord)
class DisputeRecordAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "org", "dispute_id", "amount_cents", "status", "frozen_micros", "closed_at"]
    list_filter = ["status"]
    search_fields = ["org__slug", "dispute_id", "charge_id"]
    list_select_related = ["org"]


@admin.register(CheckoutStart)
class CheckoutStartAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "org", "kind", "pack", "plan_price", "status", "simulated", "session_id"]
    list_filter = ["kind", "status", "simulated"]
    search_fields = ["org__slug", "session_id"]
    list_select_related = ["org", "pack", "plan_price__plan"]


@admin.register(AllowancePeriod)
class AllowancePeriodAdmin(ReadOnlyAdmin):
    list_display = ["org", "plan_code", "period_start", "period_end", "amount_paid_cents", "discount_cents",
                    "promotion_code", "subscription_id", "invoice_id"]
    search_fields = ["org__slug", "subscription_id", "invoice_id", "promotion_code"]
    list_select_related = ["org"]


@admin.register(OverageReport)
class OverageReportAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "org", "credits", "customer_id", "sent_at", "identifier"]
    search_fields = ["org__slug", "identifier"]
    list_select_related = ["org"]
