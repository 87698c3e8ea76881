"""Pages under /billing/ that belong to accounts: the org's API keys."""

from django.urls import path

from accounts import views

app_name = "keys"

urlpatterns = [
    path("api-keys/", views.api_keys, name="list"),
    path("api-keys/pause-on-runaway/", views.api_keys_pause_on_runaway, name="pause_on_runaway"),
    path("api-keys/<str:prefix>/revoke/", views.api_key_revoke, name="revoke"),
]
