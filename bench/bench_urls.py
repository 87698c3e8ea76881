"""Every real URL, plus /bench/bare/<pk>: a bare DRF endpoint (no authentication,
permission or throttle) that reads one row by primary key, the baseline the
HTTP figures are compared with."""

from django.urls import path
from rest_framework.response import Response
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


urlpatterns = [path("bench/bare/<int:pk>", BareView.as_view()), *real_urlpatterns]
