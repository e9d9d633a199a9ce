"""Cross-cutting API endpoints: the health report."""
from __future__ import annotations

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from .health import health_report
from .permissions import AnyRole


class HealthApi(APIView):
    """Database, broker, time-series store and beat heartbeat: 200 when all are healthy, else 503."""

    permission_classes = [AnyRole]

    class OutputSerializer(serializers.Serializer):
        status = serializers.ChoiceField(choices=["ok", "failing"])
        failing = serializers.ListField(child=serializers.CharField())
        checks = serializers.DictField(
            child=inline_serializer(
                "HealthCheckPart",
                fields={"ok": serializers.BooleanField(), "detail": serializers.CharField()},
            )
        )

    @extend_schema(responses={200: OutputSerializer, 503: OutputSerializer}, operation_id="health_retrieve")
    def get(self, request: Request) -> Response:
        report = health_report()
        code = status.HTTP_200_OK if report["status"] == "ok" else status.HTTP_503_SERVICE_UNAVAILABLE
        return Response(report, status=code)
