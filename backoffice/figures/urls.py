"""URLs of the back office's figures pages (included by backoffice/urls.py)."""

from django.contrib import admin
from django.urls import path

from backoffice.figures import views

urlpatterns: list = [
    # admin_view: staff only (others go to the admin's login), never cached.
    path("figures/", admin.site.admin_view(views.figures_page), name="figures"),
]
