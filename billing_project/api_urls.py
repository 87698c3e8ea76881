"""/api/v1/: every app's API views, in one list so the surface is easy to read."""

from django.urls import path

from billing import api as billing_api
from orgs.api import OrgView
from outbound import api as outbound_api
from usage import api as usage_api

app_name = "api"

urlpatterns = [
    path("org", OrgView.as_view(), name="org"),
    # billing: catalog, checkout, portal, subscription, invoices, entitlements
    path("plans", billing_api.PlansView.as_view(), name="plans"),
    path("packages", billing_api.PackagesView.as_view(), name="packages"),
    path("checkout", billing_api.CheckoutView.as_view(), name="checkout"),
    path("portal", billing_api.PortalView.as_view(), name="portal"),
    path("subscription", billing_api.SubscriptionView.as_view(), name="subscription"),
    path("invoices", billing_api.InvoicesView.as_view(), name="invoices"),
    path("entitlements", billing_api.EntitlementsView.as_view(), name="entitlements"),
    path("entitlements/check", billing_api.EntitlementCheckView.as_view(), name="entitlements-check"),
    # --- usage and credits (usage/api.py) ---
    path("balance", usage_api.BalanceView.as_view(), name="balance"),
    path("usage/events", usage_api.UsageEventView.as_view(), name="usage-events"),
    path("usage/events/batch", usage_api.UsageBatchView.as_view(), name="usage-events-batch"),
    path("usage/summary", usage_api.UsageSummaryView.as_view(), name="usage-summary"),
    path("holds", usage_api.HoldCreateView.as_view(), name="holds"),
    path("holds/<int:hold_id>", usage_api.HoldView.as_view(), name="hold"),
    path("holds/<int:hold_id>/capture", usage_api.HoldCaptureView.as_view(), name="hold-capture"),
    path("holds/<int:hold_id>/release", usage_api.HoldReleaseView.as_view(), name="hold-release"),
    path("holds/<int:hold_id>/tokens", usage_api.HoldTokensView.as_view(), name="hold-tokens"),
    path("holds/<int:hold_id>/tokens/<int:token_id>", usage_api.HoldTokenView.as_view(), name="hold-token"),
    path("estimates", usage_api.EstimateView.as_view(), name="estimates"),
    path("ledger", usage_api.LedgerView.as_view(), name="ledger"),
    # run ids are the platform's and may hold a slash
    path("runs/<path:workflow_run_id>", usage_api.RunReceiptView.as_view(), name="run-receipt"),
    path("transfers", usage_api.TransferView.as_view(), name="transfers"),
    path("provider-keys", usage_api.ProviderKeysView.as_view(), name="provider-keys"),
    path("provider-keys/<int:key_id>/revoke", usage_api.ProviderKeyRevokeView.as_view(), name="provider-key-revoke"),
    path("api-keys/<str:prefix>/resume", usage_api.ApiKeyResumeView.as_view(), name="api-key-resume"),
    # --- outbound webhooks (outbound/api.py) ---
    path("webhook-endpoints", outbound_api.EndpointsView.as_view(), name="webhook-endpoints"),
    path("webhook-endpoints/<int:endpoint_id>", outbound_api.EndpointView.as_view(), name="webhook-endpoint"),
    path("webhook-endpoints/<int:endpoint_id>/rotate-secret", outbound_api.EndpointRotateView.as_view(),
         name="webhook-endpoint-rotate"),
    path("events", outbound_api.EventsView.as_view(), name="events"),
]
