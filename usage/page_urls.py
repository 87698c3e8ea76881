"""Pages under /billing/ that belong to usage."""

from django.urls import path

from usage import views

app_name = "runaway"

urlpatterns = [
    path("api-keys/<str:prefix>/resume/", views.api_key_resume, name="resume"),
]

# The keys page's per-key budget form (a namespace of its own: "runaway" is the breaker's).
budget_urlpatterns = (
    [path("api-keys/<str:prefix>/budget/", views.api_key_budget, name="budget")],
    "keybudget",
)
