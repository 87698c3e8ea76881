from django.db import transaction
from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema
from rest_framework import exceptions, serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from billing_project.errors import InvalidRequest
from orgs.models import MemberUsage
from orgs.services import org_member_usage_set, org_pause_on_runaway_set


class OrganizationSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    slug = serializers.SlugField()
    name = serializers.CharField()
    is_personal = serializers.BooleanField()
    created_at = serializers.DateTimeField()
    pause_on_runaway = serializers.BooleanField(
        help_text="Pause an API key whose last hour of spend runs far above its usual rate (402 usage_paused)."
    )
    member_usage = serializers.ChoiceField(
        choices=MemberUsage.choices,
        help_text="Who pays for members' usage: `pool`, the organization's balance; `personal`, each member's "
                  "personal balance (events and holds must then name a member).",
    )


class OrganizationUpdateSerializer(serializers.Serializer):
    pause_on_runaway = serializers.BooleanField(required=False)
    member_usage = serializers.ChoiceField(choices=MemberUsage.choices, required=False)


class OrgView(APIView):
    """The organization the API key belongs to."""

    write_scope = "billing:write"

    def initial(self, request, *args, **kwargs):
        # A method the view lacks is 405 whatever the key's scopes (permissions run first otherwise).
        if request.method.lower() not in self.http_method_names or not hasattr(self, request.method.lower()):
            raise exceptions.MethodNotAllowed(request.method)
        super().initial(request, *args, **kwargs)

    @extend_schema(responses=OrganizationSerializer, summary="The calling key's organization")
    def get(self, request):
        return Response(OrganizationSerializer(request.auth.org).data)

    @extend_schema(
        summary="Change the organization's settings (pause on runaway, who pays for members' usage). "
                "Needs `billing:write`.",
        request=OrganizationUpdateSerializer,
        responses={
            200: OrganizationSerializer,
            400: OpenApiResponse(description="invalid_request, invalid_member_usage"),
            401: OpenApiResponse(description="authentication_failed"),
            403: OpenApiResponse(description="permission_denied: the key lacks the scope"),
        },
        examples=[
            OpenApiExample("Pause runaway keys", request_only=True, value={"pause_on_runaway": True}),
            OpenApiExample("Members pay for their own usage", request_only=True, value={"member_usage": "personal"}),
        ],
    )
    def patch(self, request):
        serializer = OrganizationUpdateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        org = request.auth.org
        if not serializer.validated_data:
            raise InvalidRequest("Send a setting to change, such as pause_on_runaway.", code="invalid_request")
        with transaction.atomic():  # every setting, or none
            if "pause_on_runaway" in serializer.validated_data:
                org = org_pause_on_runaway_set(
                    org=org, enabled=serializer.validated_data["pause_on_runaway"], actor=request.auth
                )
            if "member_usage" in serializer.validated_data:
                org = org_member_usage_set(
                    org=org, member_usage=serializer.validated_data["member_usage"], actor=request.auth
                )
        return Response(OrganizationSerializer(org).data)
