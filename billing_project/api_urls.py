"""/api/v1/: every app's API views, in one list so the surface is easy to read."""

from django.urls import path

from billing import api as billing_api
from orgs.api import OrgView

app_name = "api"

urlpatterns = [
    path("org", OrgView.as_view(), name="org"),
    # billing: catalog, checkout, portal, subscription, invoices
    path("plans", billing_api.PlansView.as_view(), name="plans"),
    path("packages", billing_api.PackagesView.as_view(), name="packages"),
    path("checkout", billing_api.CheckoutView.as_view(), name="checkout"),
    path("portal", billing_api.PortalView.as_view(), name="portal"),
    path("subscription", billing_api.SubscriptionView.as_view(), name="subscription"),
    path("invoices", billing_api.InvoicesView.as_view(), name="invoices"),
]
