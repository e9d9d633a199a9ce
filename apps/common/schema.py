"""OpenAPI schema generation tuned to the one-APIView-per-operation style (served by ``schema_view``).

Every API nests its serializers (``HealthApi.OutputSerializer``), so the plain class name would make every
component "Output". Nested serializers are named after their qualified name instead
(``HealthApiOutput``), which keeps component names unique without per-class overrides.
"""
from __future__ import annotations

from drf_spectacular.openapi import AutoSchema
from rest_framework import serializers


class StammAutoSchema(AutoSchema):
    def get_serializer_name(self, serializer: serializers.Serializer, direction: str) -> str:
        qualname = serializer.__class__.__qualname__
        if "." not in qualname or "<locals>" in qualname:
            return super().get_serializer_name(serializer, direction)
        return "".join(part.removesuffix("Serializer") for part in qualname.split("."))
