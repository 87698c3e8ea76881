from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from billing_project import views
from usage import page_urls as usage_page_urls

handler400 = "billing_project.api.bad_request"
handler403 = "billing_project.api.permission_denied"
handler404 = "billing_project.api.page_not_found"
handler500 = "billing_project.api.server_error"

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="billing:overview", permanent=False), name="home"),
    path("healthz", views.healthz, name="healthz"),
    path("metrics", views.metrics_scrape, name="metrics"),
    path("accounts/", include("accounts.urls")),
    path("billing/", include("orgs.urls")),
    path("billing/", include("accounts.page_urls")),
    path("billing/", include("usage.page_urls")),
    path("billing/", include(usage_page_urls.budget_urlpatterns)),
    path("billing/", include("billing.urls")),
    path("notifications/", include("inbox.urls")),
    path("billing/", include("outbound.urls")),
    path("admin/backoffice/", include("backoffice.urls")),
    path("admin/", admin.site.urls),
    path("api/v1/", include("billing_project.api_urls")),
    # Stripe webhooks, through dj-stripe: /stripe/webhook/<endpoint uuid>/
    path("stripe/", include("djstripe.urls", namespace="djstripe")),
    path("api/schema/", SpectacularAPIView.as_view(authentication_classes=[], permission_classes=[]), name="schema"),
    path(
        "api/docs/",
        SpectacularSwaggerView.as_view(url_name="schema", authentication_classes=[], permission_classes=[]),
        name="api-docs",
    ),
]
