"""Declared runtime environments in the REST API: their build state, and building one again."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from . import selectors, services
from .permissions import CanManage, CanView


class EnvironmentOutput(serializers.Serializer):
    key = serializers.CharField()
    state = serializers.CharField()
    message = serializers.CharField()
    requirements = serializers.ListField(child=serializers.CharField())
    python_request = serializers.CharField()
    python_version = serializers.CharField()
    resolved = serializers.CharField()
    created_at = serializers.DateTimeField()
    built_at = serializers.DateTimeField(allow_null=True)
    build_seconds = serializers.FloatField(allow_null=True)


class EnvironmentListApi(APIView):
    """Declared runtime environments with their build state (building, ready, failed with the message)."""

    permission_classes = [CanView]

    @extend_schema(responses=EnvironmentOutput(many=True))
    def get(self, request: Request) -> Response:
        return Response(EnvironmentOutput(selectors.environment_list(), many=True).data)


class EnvironmentDetailApi(APIView):
    permission_classes = [CanView]

    @extend_schema(responses=EnvironmentOutput)
    def get(self, request: Request, key: str) -> Response:
        return Response(EnvironmentOutput(selectors.environment_get(key=key)).data)


class EnvironmentRebuildApi(APIView):
    """Build an environment again (after a failure, e.g. when the package index was unreachable)."""

    permission_classes = [CanManage]

    @extend_schema(request=None, responses={202: EnvironmentOutput})
    def post(self, request: Request, key: str) -> Response:
        environment = services.environment_rebuild(environment=selectors.environment_get(key=key))
        return Response(EnvironmentOutput(environment).data, status=status.HTTP_202_ACCEPTED)
