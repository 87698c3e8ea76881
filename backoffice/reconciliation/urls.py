"""URLs of the back office's reconciliation pages (included by backoffice/urls.py)."""

from django.contrib import admin
from django.urls import path

from backoffice.reconciliation import views

urlpatterns: list = [
    # admin_view: staff only (others go to the admin's login), CSRF-protected, never cached.
    path("reconciliation/", admin.site.admin_view(views.reconciliation), name="reconciliation"),
]
