from django.urls import path

from billing import views

app_name = "billing"

urlpatterns = [
    path("", views.overview, name="overview"),
    path("top-up/", views.top_up, name="top_up"),
    path("plans/", views.plans, name="plans"),
    path("plans/change/", views.plan_change, name="plan_change"),
    path("plans/cancel/", views.plan_cancel, name="plan_cancel"),
    path("invoices/", views.invoices, name="invoices"),
    path("checkout/", views.checkout_page, name="checkout"),  # the first buy page: redirects to top up
    path("checkout/start/", views.checkout_start, name="checkout_start"),
    path("checkout/done/", views.checkout_done, name="checkout_done"),
    path("checkout/status/", views.checkout_status, name="checkout_status"),
    path("checkout/canceled/", views.checkout_canceled, name="checkout_canceled"),
    path("checkout/simulate/<str:session_id>/", views.simulate, name="simulate"),
    path("portal/", views.portal, name="portal"),
    path("usage/", views.usage, name="usage"),
    path("usage/export.csv", views.usage_export, name="usage_export"),
    # Run ids are the platform's and may hold a slash: the CSV's suffix has none, so the two never overlap.
    path("usage/runs/<path:run_id>/receipt.csv", views.run_receipt_export, name="run_receipt_export"),
    path("usage/runs/<path:run_id>/", views.run_receipt, name="run_receipt"),
    path("send/", views.send, name="send"),
    path("send/confirm/", views.send_confirm, name="send_confirm"),
    path("members/", views.members, name="members"),
    path("members/<int:member_id>/limit/", views.member_limit, name="member_limit"),
    path("settings/", views.settings_home, name="settings"),
    path("settings/auto-top-up/", views.auto_topup, name="auto_topup"),
    path("settings/card/", views.card_change, name="card_change"),
    path("settings/alerts/", views.alerts, name="alerts"),
    path("settings/provider-keys/", views.provider_keys, name="provider_keys"),
    path("settings/who-pays/", views.member_usage, name="member_usage"),
    path("settings/provider-keys/<int:key_id>/revoke/", views.provider_key_revoke, name="provider_key_revoke"),
]
