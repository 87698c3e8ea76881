"""URLs of the back office's figures pages (included by backoffice/urls.py)."""

from django.urls import path  # noqa: F401

urlpatterns: list = []
