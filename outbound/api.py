"""/api/v1/webhook-endpoints and /api/v1/events."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound as DRFNotFound
from rest_framework.exceptions import ValidationError
from rest_framework.generics import ListAPIView
from rest_framework.pagination import CursorPagination
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.models import Scope
from outbound import selectors, services

ERRORS = {
    400: OpenApiResponse(description="invalid_request, invalid_url, invalid_events, too_many_endpoints"),
    401: OpenApiResponse(description="authentication_failed"),
    403: OpenApiResponse(description="permission_denied: the key lacks the scope"),
}
NOT_FOUND = {404: OpenApiResponse(description="not_found: no such endpoint in this organization")}


class AttemptSerializer(serializers.Serializer):
    at = serializers.DateTimeField()
    status_code = serializers.IntegerField(allow_null=True)
    latency_ms = serializers.IntegerField()
    response_excerpt = serializers.CharField(help_text="The first 1 KiB of the response body.")
    error = serializers.CharField()
    succeeded = serializers.BooleanField()


class DeliverySerializer(serializers.Serializer):
    id = serializers.IntegerField()
    event_id = serializers.CharField(source="event.public_id")
    event_type = serializers.CharField(source="event.type")
    state = serializers.ChoiceField(choices=["pending", "succeeded", "failed"])
    attempts = serializers.IntegerField()
    next_attempt_at = serializers.DateTimeField(allow_null=True)
    last_status_code = serializers.IntegerField(allow_null=True)
    created_at = serializers.DateTimeField()
    attempt_log = AttemptSerializer(many=True)


class EndpointSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    url = serializers.CharField()
    events = serializers.ListField(child=serializers.CharField())
    description = serializers.CharField()
    created_at = serializers.DateTimeField()
    disabled_at = serializers.DateTimeField(allow_null=True)
    failing_since = serializers.DateTimeField(allow_null=True)
    previous_secret_expires_at = serializers.DateTimeField(
        source="previous_secret_until", allow_null=True,
        help_text="During a rotation: until when the previous secret still signs beside the new one.",
    )


class EndpointWithSecretSerializer(EndpointSerializer):
    secret = serializers.CharField(help_text="The signing secret. Shown only in this answer: keep it.")


class EndpointDetailSerializer(EndpointSerializer):
    recent_deliveries = DeliverySerializer(many=True, help_text="The 50 most recent, newest first.")


class EndpointListSerializer(serializers.Serializer):
    data = EndpointSerializer(many=True)


class EndpointCreateSerializer(serializers.Serializer):
    url = serializers.CharField(max_length=2000, help_text="https URL that receives the events.")
    events = serializers.ListField(
        child=serializers.CharField(max_length=64), min_length=1, max_length=len(services.EVENT_TYPES),
        help_text='Event types to receive, or ["*"] for all.',
    )
    description = serializers.CharField(max_length=200, required=False, default="", allow_blank=True)


class EventSerializer(serializers.Serializer):
    id = serializers.CharField(source="public_id")
    type = serializers.CharField()
    created = serializers.DateTimeField(source="created_at")
    sequence = serializers.IntegerField()
    payload = serializers.JSONField(help_text="The event exactly as delivered.")


class EndpointsView(APIView):
    """The organization's webhook endpoints."""

    write_scope = Scope.BILLING_WRITE

    @extend_schema(operation_id="webhook_endpoints_list", summary="List webhook endpoints", responses={200: EndpointListSerializer, **ERRORS})
    def get(self, request):
        endpoints = selectors.endpoints_for(request.auth.org_id)
        return Response({"data": EndpointSerializer(endpoints, many=True).data})

    @extend_schema(
        operation_id="webhook_endpoints_create", summary="Create a webhook endpoint",
        description="Answers with the signing `secret`, shown only here. Needs `billing:write`.",
        request=EndpointCreateSerializer, responses={201: EndpointWithSecretSerializer, **ERRORS},
        examples=[OpenApiExample("Balance events", request_only=True, value={
            "url": "https://platform.example/tollgate", "events": ["balance.low", "balance.replenished"],
            "description": "pause and resume workflows"})],
    )
    def post(self, request):
        body = EndpointCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        endpoint = services.endpoint_create(org=request.auth.org, actor=request.auth, **body.validated_data)
        return Response(EndpointWithSecretSerializer(endpoint).data, status=status.HTTP_201_CREATED)


class EndpointView(APIView):
    """One webhook endpoint."""

    write_scope = Scope.BILLING_WRITE

    @extend_schema(operation_id="webhook_endpoint_retrieve", summary="Show a webhook endpoint with its recent deliveries",
                   responses={200: EndpointDetailSerializer, **ERRORS, **NOT_FOUND})
    def get(self, request, endpoint_id: int):
        endpoint = selectors.endpoint_get(org_id=request.auth.org_id, endpoint_id=endpoint_id)
        endpoint.recent_deliveries = selectors.deliveries_recent(endpoint)
        return Response(EndpointDetailSerializer(endpoint).data)

    @extend_schema(operation_id="webhook_endpoint_destroy", summary="Delete a webhook endpoint", responses={204: None, **ERRORS, **NOT_FOUND})
    def delete(self, request, endpoint_id: int):
        endpoint = selectors.endpoint_get(org_id=request.auth.org_id, endpoint_id=endpoint_id)
        services.endpoint_delete(endpoint=endpoint, actor=request.auth)
        return Response(status=status.HTTP_204_NO_CONTENT)


class EndpointRotateView(APIView):
    write_scope = Scope.BILLING_WRITE

    @extend_schema(
        operation_id="webhook_endpoint_rotate_secret", summary="Rotate an endpoint's signing secret",
        description="Answers with the new `secret`, shown only here; the previous one keeps signing beside it "
                    "for 24 hours.",
        request=None, responses={200: EndpointWithSecretSerializer, **ERRORS, **NOT_FOUND},
    )
    def post(self, request, endpoint_id: int):
        endpoint = selectors.endpoint_get(org_id=request.auth.org_id, endpoint_id=endpoint_id)
        endpoint = services.endpoint_secret_rotate(endpoint=endpoint, actor=request.auth)
        return Response(EndpointWithSecretSerializer(endpoint).data)


class EventPagination(CursorPagination):
    ordering = ("-sequence",)
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200

    def decode_cursor(self, request):
        # A cursor this API did not give is bad input, not a missing object.
        try:
            return super().decode_cursor(request)
        except DRFNotFound:
            raise ValidationError({"cursor": ["Not a cursor this API gave: follow `next` or `previous`."]}) from None


class EventsView(ListAPIView):
    serializer_class = EventSerializer
    pagination_class = EventPagination

    def get_queryset(self):
        return selectors.events_for(self.request.auth.org_id)

    @extend_schema(summary="Recent events, newest first (cursor-paginated)",
                   responses={200: EventSerializer(many=True), **ERRORS})
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)
