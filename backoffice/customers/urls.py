"""URLs of the back office's customers pages (included by backoffice/urls.py)."""

from django.urls import path  # noqa: F401

urlpatterns: list = []
