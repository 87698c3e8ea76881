"""Staff views of billing. The catalog is editable (push it to Stripe with
`manage.py sync_catalog`); everything that records money is read-only here,
because it changes only through the services (webhooks, tasks, pages)."""

from django.contrib import admin, messages

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
from billing_project.admin_base import ReadOnlyAdmin
from billing_project.errors import TollgateError


# --- catalog ---------------------------------------------------------------


class PlanPriceInline(admin.TabularInline):
    model = PlanPrice
    extra = 0
    fields = ["interval", "amount_cents", "currency", "allowance_micros", "lookup_key", "stripe_price_id", "active"]
    readonly_fields = ["stripe_price_id"]


@admin.register(Plan)
class PlanAdmin(admin.ModelAdmin):
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
class PackAdmin(admin.ModelAdmin):
    list_display = ["name", "code", "credits_micros", "amount_cents", "currency", "active", "stripe_price_id"]
    list_editable = ["active"]
    readonly_fields = ["stripe_product_id", "stripe_price_id"]


@admin.register(OveragePrice)
class OveragePriceAdmin(admin.ModelAdmin):
    list_display = ["interval", "cents_per_credit", "currency", "lookup_key", "stripe_price_id"]
    readonly_fields = ["stripe_price_id"]


# --- organizations' billing -------------------------------------------------


@admin.register(BillingState)
class BillingStateAdmin(ReadOnlyAdmin):
    list_display = ["org", "plan_code", "status", "interval", "current_period_end", "trial_ends_at", "grace_ends_at",
                    "customer_id"]
    list_filter = ["status", "plan_code", "interval"]
    search_fields = ["org__slug", "org__name", "customer__id", "subscription_id"]
    list_select_related = ["org"]


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
    list_display = ["created_at", "org", "kind", "pack", "amount_cents", "payment_intent_id", "simulated"]
    list_filter = ["kind", "simulated"]
    search_fields = ["org__slug", "payment_intent_id", "checkout_session_id"]
    list_select_related = ["org", "pack"]
    date_hierarchy = "created_at"
    actions = ["refund_in_full"]

    @admin.action(description="Refund in full through Stripe (credits are clawed back when Stripe confirms)")
    def refund_in_full(self, request, queryset):
        for purchase in queryset:
            try:
                services.purchase_refund(purchase=purchase, actor=request.user)
            except TollgateError as error:
                self.message_user(request, f"{purchase}: {error.message}", messages.ERROR)
            else:
                self.message_user(request, f"Refund requested for {purchase} of {purchase.org}.", messages.SUCCESS)


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
    list_display = ["org", "plan_code", "period_start", "period_end", "subscription_id", "invoice_id"]
    search_fields = ["org__slug", "subscription_id", "invoice_id"]
    list_select_related = ["org"]


@admin.register(OverageReport)
class OverageReportAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "org", "credits", "customer_id", "sent_at", "identifier"]
    search_fields = ["org__slug", "identifier"]
    list_select_related = ["org"]
