"""/api/v1/: every app's API views, in one list so the surface is easy to read."""

from django.urls import path

from orgs.api import OrgView

app_name = "api"

urlpatterns = [
    path("org", OrgView.as_view(), name="org"),
]
