from django.contrib import admin

from billing_project.admin_base import ReadOnlyAdmin
from orgs.models import AuditEvent, Invitation, Membership, Organization


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]


@admin.register(Organization)
class OrganizationAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "is_personal", "pause_on_runaway", "created_at"]
    list_filter = ["is_personal", "pause_on_runaway", "created_at"]
    search_fields = ["name", "slug", "memberships__user__email"]
    prepopulated_fields = {"slug": ["name"]}
    inlines = [MembershipInline]


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["user", "org", "role", "created_at"]
    list_filter = ["role"]
    search_fields = ["user__email", "org__slug", "org__name"]
    list_select_related = ["user", "org"]
    autocomplete_fields = ["user", "org"]


@admin.register(Invitation)
class InvitationAdmin(admin.ModelAdmin):
    list_display = ["email", "org", "role", "created_at", "expires_at", "accepted_at", "revoked_at"]
    list_filter = ["role"]
    search_fields = ["email", "org__slug"]
    list_select_related = ["org"]
    readonly_fields = ["token_hash", "invited_by", "accepted_by", "accepted_at", "created_at"]


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "action", "org", "actor_label", "source", "ip", "request_id"]
    list_filter = ["action", "source"]
    search_fields = ["action", "org__slug", "actor_label", "request_id"]
    list_select_related = ["org"]
    date_hierarchy = "created_at"
