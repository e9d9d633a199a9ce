"""Account endpoints: who am I, and obtaining a token with a username and password."""
from __future__ import annotations

from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import serializers
from rest_framework.authtoken.views import ObtainAuthToken
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import AnonRateThrottle
from rest_framework.views import APIView

from .selectors import user_roles


class MeApi(APIView):
    """The authenticated caller: username, roles and capabilities."""

    class OutputSerializer(serializers.Serializer):
        username = serializers.CharField()
        roles = serializers.ListField(child=serializers.CharField())
        capabilities = serializers.ListField(child=serializers.CharField())

    @extend_schema(responses=OutputSerializer, operation_id="me_retrieve")
    def get(self, request: Request) -> Response:
        user = request.user
        capabilities = sorted(
            perm.split(".", 1)[1] for perm in user.get_all_permissions() if perm.startswith("accounts.")
        )
        data = {"username": user.get_username(), "roles": user_roles(user=user), "capabilities": capabilities}
        return Response(self.OutputSerializer(data).data)


class TokenLoginThrottle(AnonRateThrottle):
    rate = "20/min"


@extend_schema_view(post=extend_schema(auth=[], operation_id="auth_token_create"))
class TokenObtainApi(ObtainAuthToken):
    """Exchange a username and password for the user's API token (throttled against guessing)."""

    throttle_classes = [TokenLoginThrottle]
