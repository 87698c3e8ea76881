"""Pages under /billing/ that belong to usage."""

from django.urls import path

from usage import views

app_name = "runaway"

urlpatterns = [
    path("api-keys/<str:prefix>/resume/", views.api_key_resume, name="resume"),
]
