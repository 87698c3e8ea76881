"""Staff pages, under /admin/backoffice/ (staff only, in the admin's frame)."""

from django.urls import path  # noqa: F401

app_name = "backoffice"

urlpatterns: list = []
