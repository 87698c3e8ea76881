from django.urls import path

from billing import views

app_name = "billing"

urlpatterns = [
    path("", views.overview, name="overview"),
    path("checkout/", views.checkout_page, name="checkout"),
    path("checkout/start/", views.checkout_start, name="checkout_start"),
    path("checkout/done/", views.checkout_done, name="checkout_done"),
    path("checkout/canceled/", views.checkout_canceled, name="checkout_canceled"),
    path("checkout/simulate/<str:session_id>/", views.simulate, name="simulate"),
    path("portal/", views.portal, name="portal"),
    path("usage/", views.usage, name="usage"),
    path("usage/export.csv", views.usage_export, name="usage_export"),
    path("send/", views.send, name="send"),
]
