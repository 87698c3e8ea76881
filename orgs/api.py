from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView


class OrganizationSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    slug = serializers.SlugField()
    name = serializers.CharField()
    is_personal = serializers.BooleanField()
    created_at = serializers.DateTimeField()


class OrgView(APIView):
    """The organization the API key belongs to."""

    @extend_schema(responses=OrganizationSerializer, summary="The calling key's organization")
    def get(self, request):
        return Response(OrganizationSerializer(request.auth.org).data)
