from django.urls import path

from outbound import views

app_name = "outbound"

urlpatterns = [
    path("settings/webhooks/", views.webhooks, name="webhooks"),
    path("settings/webhooks/<int:endpoint_id>/", views.webhook_detail, name="webhook_detail"),
    path("settings/webhooks/<int:endpoint_id>/rotate/", views.webhook_rotate, name="webhook_rotate"),
    path("settings/webhooks/<int:endpoint_id>/enable/", views.webhook_enable, name="webhook_enable"),
    path("settings/webhooks/<int:endpoint_id>/delete/", views.webhook_delete, name="webhook_delete"),
    path("settings/webhooks/deliveries/<int:delivery_id>/resend/", views.delivery_resend, name="delivery_resend"),
]
