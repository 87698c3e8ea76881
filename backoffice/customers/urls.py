"""URLs of the back office's customers pages (included by backoffice/urls.py).
Each view goes through the admin site's login and staff check."""

from django.contrib import admin
from django.urls import path

from backoffice.customers import views

urlpatterns: list = [
    path("customers/", admin.site.admin_view(views.customers_search), name="customers"),
    path("customers/<int:org_id>/", admin.site.admin_view(views.customer_detail), name="customer"),
    path("customers/<int:org_id>/<slug:action>/", admin.site.admin_view(views.customer_action),
         name="customer_action"),
]
