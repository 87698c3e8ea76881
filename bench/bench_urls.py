"""Every real URL, plus /bench/bare/<pk>: a bare DRF endpoint (no authentication,
permission or throttle) that reads one row by primary key, the baseline the
HTTP figures are compared with."""

from django.urls import path
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.views import APIView

from billing_project.urls import urlpatterns as real_urlpatterns
from usage.models import CreditAccount


class BareView(APIView):
    authentication_classes: list = []
    permission_classes: list = []
    throttle_classes: list = []

    def get(self, request, pk: int):
        balance = CreditAccount.objects.values_list("balance_micros", flat=True).get(pk=pk)
        return Response({"id": pk, "balance_micros": str(balance)})


class BareAuthView(BareView):
    """The same read behind the API's own key authentication, scope check and
    rate limit: what any authenticated endpoint pays before its own work."""

    authentication_classes = api_settings.DEFAULT_AUTHENTICATION_CLASSES
    permission_classes = api_settings.DEFAULT_PERMISSION_CLASSES
    throttle_classes = api_settings.DEFAULT_THROTTLE_CLASSES


urlpatterns = [
    path("bench/bare/<int:pk>", BareView.as_view()),
    path("bench/bare-auth/<int:pk>", BareAuthView.as_view()),
    *real_urlpatterns,
]
