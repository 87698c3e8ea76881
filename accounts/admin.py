from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin

from accounts import services
from accounts.models import OrgAPIKey, User
from billing_project.admin_base import AmountsAdmin


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    ordering = ["email"]
    list_display = ["email", "full_name", "is_staff", "is_active", "date_joined", "last_login"]
    list_filter = ["is_staff", "is_superuser", "is_active"]
    search_fields = ["email", "full_name"]
    fieldsets = [
        (None, {"fields": ["email", "password"]}),
        ("Profile", {"fields": ["full_name"]}),
        ("Permissions", {"fields": ["is_active", "is_staff", "is_superuser", "groups", "user_permissions"]}),
        ("Dates", {"fields": ["last_login", "date_joined"]}),
    ]
    add_fieldsets = [(None, {"classes": ["wide"], "fields": ["email", "password1", "password2"]})]

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # the ledger and audit trail name people (PROTECT): deactivate instead


@admin.register(OrgAPIKey)
class OrgAPIKeyAdmin(AmountsAdmin):
    """Keys are created on the org's page or by `create_api_key`, where the secret
    is shown once; here staff can only look them up and revoke them."""

    list_display = ["prefix", "name", "org", "scopes", "created", "last_used_at", "revoked"]
    list_filter = ["revoked", "created"]
    search_fields = ["prefix", "name", "org__slug", "org__name"]
    list_select_related = ["org"]
    fields = ["prefix", "name", "org", "scopes", "created_by", "created", "last_used_at", "revoked", "revoked_at", "expiry_date",
              "paused_at", "paused_reason", "monthly_limit_micros", "meters"]
    readonly_fields = fields
    actions = ["revoke"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # revoke instead: the audit trail names keys by prefix

    @admin.action(description="Revoke selected keys")
    def revoke(self, request, queryset):
        for key in queryset.filter(revoked=False).select_related("org"):
            services.api_key_revoke(org=key.org, key=key, actor=request.user, staff=True)
        messages.success(request, "Revoked.")
