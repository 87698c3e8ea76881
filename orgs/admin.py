from django.contrib import admin
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.html import format_html

from billing_project.admin_base import ReadOnlyAdmin
from orgs.models import AuditEvent, Invitation, Membership, Organization


class MembershipInline(admin.TabularInline):
    """Read only: roles change through orgs.services.membership_change_role, which
    keeps an owner and writes the audit row (the org's pages, or the customer page)."""

    model = Membership
    extra = 0
    can_delete = False
    fields = readonly_fields = ["user", "role", "created_at"]

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Organization)
class OrganizationAdmin(admin.ModelAdmin):
    """Organizations are made by sign-up and org_create (which start their
    billing) and hold the ledger (PROTECT): no add, no delete. Their settings
    change through services that check roles and write audit rows, so only the
    name is editable here; the customer page has the staff actions."""

    list_display = ["name", "slug", "is_personal", "member_usage", "usage_paused_at", "created_at", "customer_page"]
    list_filter = ["is_personal", "pause_on_runaway", "member_usage", "created_at"]
    search_fields = ["name", "slug", "memberships__user__email"]
    fields = ["name", "slug", "is_personal", "member_usage", "members_paid_since", "pause_on_runaway",
              "usage_paused_at", "usage_paused_reason", "created_at"]
    readonly_fields = ["slug", "is_personal", "member_usage", "members_paid_since", "pause_on_runaway",
                       "usage_paused_at", "usage_paused_reason", "created_at"]
    inlines = [MembershipInline]

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description="customer page")
    def customer_page(self, org: Organization) -> str:
        return format_html('<a href="{}">open</a>', reverse("backoffice:customer", args=[org.pk]))

    def history_view(self, request, object_id, extra_context=None):
        """An organization's history is its audit trail, not Django's change log."""
        return redirect(reverse("admin:orgs_auditevent_changelist") + f"?org__id__exact={int(object_id)}")


@admin.register(Membership)
class MembershipAdmin(ReadOnlyAdmin):
    list_display = ["user", "org", "role", "created_at"]
    list_filter = ["role"]
    search_fields = ["user__email", "org__slug", "org__name"]
    list_select_related = ["user", "org"]


@admin.register(Invitation)
class InvitationAdmin(ReadOnlyAdmin):
    """Invitations are sent, accepted and revoked on the organization's members page."""

    list_display = ["email", "org", "role", "created_at", "expires_at", "accepted_at", "revoked_at"]
    list_filter = ["role"]
    search_fields = ["email", "org__slug"]
    list_select_related = ["org"]
    exclude = ["token_hash"]


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "action", "org", "actor_label", "source", "ip", "request_id"]
    list_filter = ["action", "source"]
    search_fields = ["action", "org__slug", "actor_label", "request_id"]
    list_select_related = ["org"]
    date_hierarchy = "created_at"
