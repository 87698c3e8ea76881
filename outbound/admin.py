from django.contrib import admin, messages

from billing_project.admin_base import ReadOnlyAdmin
from outbound import services
from outbound.models import Delivery, DeliveryAttempt, Event, WebhookEndpoint


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(ReadOnlyAdmin):
    list_display = ("url", "org", "created_at", "failing_since", "disabled_at")
    list_filter = ("disabled_at",)
    search_fields = ("url", "org__slug")
    exclude = ("secret", "previous_secret")


@admin.register(Event)
class EventAdmin(ReadOnlyAdmin):
    list_display = ("public_id", "type", "org", "sequence", "created_at")
    list_filter = ("type",)
    search_fields = ("public_id", "org__slug", "key")


class AttemptInline(admin.TabularInline):
    model = DeliveryAttempt
    extra = 0
    can_delete = False
    readonly_fields = ("at", "status_code", "latency_ms", "succeeded", "error", "response_excerpt")

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Delivery)
class DeliveryAdmin(ReadOnlyAdmin):
    list_display = ("id", "event", "endpoint", "state", "attempts", "last_status_code", "next_attempt_at")
    list_filter = ("state",)
    search_fields = ("event__public_id", "endpoint__url")
    inlines = [AttemptInline]
    actions = ["send_again"]

    @admin.action(description="Send again")
    def send_again(self, request, queryset):
        sent = 0
        for delivery in queryset.select_related("endpoint"):
            try:
                services.delivery_resend(delivery=delivery, actor=request.user)
                sent += 1
            except Exception as error:  # noqa: BLE001 - told to the staff member
                self.message_user(request, f"{delivery}: {error}", messages.ERROR)
        self.message_user(request, f"{sent} deliveries queued again.")
