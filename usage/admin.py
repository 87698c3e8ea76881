"""Staff views of the ledger. Entries, allocations and usage events are
read-only: a balance changes only through a service, and a staff correction
only through "Adjust credits", which writes a compensating entry with a
required reason (usage.services.credits_adjust)."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse

from billing_project.admin_base import AmountsAdmin, ReadOnlyAdmin, amount_formats
from billing_project.errors import TollgateError
from billing_project.request_context import acting_as
from usage import services
from usage.models import (
    CreditAccount,
    Grant,
    Hold,
    LedgerAllocation,
    LedgerEntry,
    MemberSpend,
    MemberSpendLimit,
    Meter,
    PausedApiKey,
    ProviderKey,
    Rate,
    RunawayOccurrence,
    SpendingToken,
    Transfer,
    UsageEvent,
)
from usage.units import AmountError, credits_to_micros, format_credits


class AdjustmentForm(forms.Form):
    credits = forms.CharField(help_text="Signed: 25 adds credits, -10 takes them back (never more than available).")
    reason = forms.CharField(max_length=500, widget=forms.Textarea(attrs={"rows": 3}),
                             help_text="Required. Kept on the entry and in the audit trail.")
    expires_at = forms.DateTimeField(required=False, help_text="Optional expiry of added credits.")

    def clean_credits(self) -> int:
        try:
            micros = credits_to_micros(self.cleaned_data["credits"])
        except AmountError as error:
            raise forms.ValidationError(str(error)) from None
        if micros == 0:
            raise forms.ValidationError("An adjustment of zero changes nothing.")
        return micros

    def clean_reason(self) -> str:
        reason = self.cleaned_data["reason"].strip()
        if not reason:
            raise forms.ValidationError("Say why.")
        return reason


@admin.register(CreditAccount)
class CreditAccountAdmin(ReadOnlyAdmin):
    list_display = ["org", "balance_micros", "available", "held_micros", "debt_micros", "plan_code", "overage_allowed",
                    "updated_at"]
    list_filter = ["plan_code", "overage_allowed"]
    search_fields = ["org__slug", "org__name"]
    list_select_related = ["org"]
    readonly_fields = ["org", "balance_micros", "available", "held_micros", "debt_micros", "plan_code", "overage_allowed",
                       "low_balance_threshold_micros", "auto_topup_threshold_micros", "features", "updated_at"]
    fields = readonly_fields

    def has_change_permission(self, request, obj=None) -> bool:
        return request.user.has_perm("usage.view_creditaccount") and obj is None

    # balance, held and debt are shown in credits and money by AmountsAdmin; available is derived.
    @admin.display(description="available")
    def available(self, account):
        return amount_formats.credits(account.available_micros)

    def history_view(self, request, object_id, extra_context=None):
        """An account's history is its ledger, not Django's change log (nobody edits an account here)."""
        return redirect(reverse("admin:usage_ledgerentry_changelist") + f"?account__id__exact={int(object_id)}")

    def get_urls(self):
        return [
            path("<int:account_id>/adjust/", self.admin_site.admin_view(self.adjust_view), name="usage_creditaccount_adjust"),
            *super().get_urls(),
        ]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = {**(extra_context or {}), "adjust_url": reverse("admin:usage_creditaccount_adjust", args=[object_id])}
        return super().change_view(request, object_id, form_url, extra_context)

    def adjust_view(self, request, account_id: int):
        """Staff credit adjustment: a compensating ledger entry with a required reason."""
        if not request.user.has_perm("usage.add_ledgerentry"):
            raise PermissionDenied
        account = get_object_or_404(CreditAccount.objects.select_related("org"), pk=account_id)
        form = AdjustmentForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            try:
                with acting_as("admin"):
                    entry = services.credits_adjust(
                        org=account.org, amount_micros=form.cleaned_data["credits"], reason=form.cleaned_data["reason"],
                        staff_user=request.user, expires_at=form.cleaned_data["expires_at"],
                    )
            except TollgateError as error:
                form.add_error(None, error.message)
            else:
                messages.success(request, f"Adjusted {account.org} by {format_credits(entry.amount_micros)} credits.")
                return redirect(reverse("admin:usage_ledgerentry_changelist") + f"?account__id__exact={account.pk}")
        context = {
            **self.admin_site.each_context(request), "title": f"Adjust credits of {account.org}", "account": account,
            "form": form, "opts": self.model._meta, "balance": format_credits(account.balance_micros),
            "available": format_credits(account.available_micros),
        }
        return TemplateResponse(request, "admin/usage/creditaccount/adjust.html", context)


class AllocationInline(admin.TabularInline):
    model = LedgerAllocation
    extra = 0
    can_delete = False
    readonly_fields = ["grant", "amount_micros"]

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(LedgerEntry)
class LedgerEntryAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "account", "kind", "amount", "balance_after", "reason", "idempotency_key"]
    list_filter = ["kind", "created_at"]
    search_fields = ["account__org__slug", "idempotency_key", "reason", "stripe_object_id"]
    list_select_related = ["account__org"]
    date_hierarchy = "created_at"
    inlines = [AllocationInline]
    show_full_result_count = False  # the ledger grows without bound; no COUNT(*) per page

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description="amount")
    def amount(self, entry):
        return format_credits(entry.amount_micros, places=6)

    @admin.display(description="balance after")
    def balance_after(self, entry):
        return format_credits(entry.balance_after_micros, places=6)


@admin.register(LedgerAllocation)
class LedgerAllocationAdmin(ReadOnlyAdmin):
    list_display = ["entry", "grant", "amount_micros"]
    search_fields = ["entry__account__org__slug"]
    list_select_related = ["entry", "grant"]


@admin.register(Grant)
class GrantAdmin(ReadOnlyAdmin):
    list_display = ["id", "account", "source", "amount_micros", "remaining_micros", "frozen_micros", "expires_at", "priority", "created_at"]
    list_filter = ["source"]
    search_fields = ["account__org__slug", "reference"]
    list_select_related = ["account__org"]


@admin.register(Hold)
class HoldAdmin(ReadOnlyAdmin):
    list_display = ["id", "account", "status", "amount_micros", "used_micros", "recorded_micros", "captured_micros",
                    "parent", "depth", "expires_at", "workflow_run_id", "created_at"]
    list_filter = ["status"]
    raw_id_fields = ["parent"]
    search_fields = ["account__org__slug", "idempotency_key", "workflow_run_id"]
    list_select_related = ["account__org"]


@admin.register(SpendingToken)
class SpendingTokenAdmin(ReadOnlyAdmin):
    list_display = ["prefix", "org", "hold", "name", "ceiling_micros", "spent_micros", "expires_at", "revoked_at"]
    search_fields = ["prefix", "org__slug", "name"]
    list_select_related = ["org", "hold"]
    exclude = ["hashed_key"]


@admin.register(Transfer)
class TransferAdmin(ReadOnlyAdmin):
    list_display = ["id", "from_account", "to_account", "amount_micros", "note", "created_at"]
    search_fields = ["from_account__org__slug", "to_account__org__slug", "idempotency_key"]
    list_select_related = ["from_account__org", "to_account__org"]


@admin.register(UsageEvent)
class UsageEventAdmin(ReadOnlyAdmin):
    list_display = ["occurred_at", "account", "meter", "model", "quantity", "credits_micros", "billing_mode", "member", "workflow_run_id"]
    list_filter = ["billing_mode", "meter"]
    search_fields = ["account__org__slug", "idempotency_key", "workflow_run_id", "member__email"]
    list_select_related = ["account__org", "meter", "member"]
    date_hierarchy = "occurred_at"
    show_full_result_count = False


@admin.register(ProviderKey)
class ProviderKeyAdmin(ReadOnlyAdmin):
    list_display = ["org", "provider", "label", "last_four", "created_at", "revoked_at"]
    list_filter = ["provider"]
    search_fields = ["org__slug", "label"]


@admin.register(MemberSpendLimit)
class MemberSpendLimitAdmin(ReadOnlyAdmin):
    list_display = ["account", "member", "monthly_limit_micros", "set_by", "updated_at"]
    search_fields = ["account__org__slug", "member__email"]


@admin.register(MemberSpend)
class MemberSpendAdmin(ReadOnlyAdmin):
    list_display = ["account", "member", "month", "spent_micros"]
    search_fields = ["account__org__slug", "member__email"]
    list_filter = ["month"]


class RateInline(admin.TabularInline):
    model = Rate
    extra = 0
    fields = ["model", "plan_code", "credits_per_unit", "provider", "provider_usd_per_unit", "note"]


@admin.register(Meter)
class MeterAdmin(AmountsAdmin):
    """Meters and their rates are editable; edits apply in every process within
    a few seconds (usage.services.rates.CARD_TTL)."""

    list_display = ["code", "name", "unit", "category", "required_feature", "is_active", "updated_at"]
    list_filter = ["category", "is_active", "required_feature"]
    search_fields = ["code", "name"]
    inlines = [RateInline]

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # usage events reference meters; deactivate instead


@admin.register(Rate)
class RateAdmin(admin.ModelAdmin):
    list_display = ["meter", "model", "plan_code", "credits_per_unit", "provider", "provider_usd_per_unit", "updated_at"]
    list_filter = ["meter", "plan_code", "provider"]
    search_fields = ["meter__code", "model", "plan_code"]
    list_editable = ["credits_per_unit"]


@admin.register(RunawayOccurrence)
class RunawayOccurrenceAdmin(ReadOnlyAdmin):
    """Each episode of spend far above the usual rate (usage.services.runaway)."""

    list_display = ["created_at", "org", "api_key_prefix", "spend", "baseline", "multiple", "paused"]
    list_filter = ["paused", "created_at"]
    search_fields = ["org__slug", "org__name", "api_key_prefix"]
    list_select_related = ["org"]

    @admin.display(description="spend in the hour")
    def spend(self, obj: RunawayOccurrence) -> str:
        return format_credits(obj.spend_micros)

    @admin.display(description="baseline per hour")
    def baseline(self, obj: RunawayOccurrence) -> str:
        return format_credits(obj.baseline_micros)


@admin.register(PausedApiKey)
class PausedApiKeyAdmin(ReadOnlyAdmin):
    """API keys the runaway breaker paused; "Resume" lets their usage in again."""

    list_display = ["prefix", "name", "org", "paused_at", "paused_reason"]
    search_fields = ["prefix", "name", "org__slug", "org__name"]
    list_select_related = ["org"]
    actions = ["resume"]

    def get_queryset(self, request):
        return super().get_queryset(request).filter(paused_at__isnull=False, revoked=False)

    def has_change_permission(self, request, obj=None) -> bool:
        return request.user.has_perm("accounts.change_orgapikey")  # the action needs it

    @admin.action(description="Resume selected keys", permissions=["change"])
    def resume(self, request, queryset):
        with acting_as("admin"):
            for key in queryset.select_related("org"):
                services.api_key_resume(org=key.org, prefix=key.prefix, actor=request.user, staff=True)
        messages.success(request, "Resumed.")
