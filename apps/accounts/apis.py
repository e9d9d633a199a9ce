"""Account endpoints: who am I, and obtaining a new token with a username and password."""
from __future__ import annotations

from datetime import timedelta

from django.contrib.auth import authenticate
from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework import exceptions, serializers
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.common.errors import ValidationFailed

from .lockout import lockout_message
from .selectors import user_roles
from .services import api_token_create


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


class TokenObtainApi(APIView):
    """Exchange a username and password for a new API token (sign-in throttling applies).

    Each call issues a new token (keys are stored only as hashes, so an existing one cannot be handed
    out again); name it after the system that will use it and give it an expiry where you can. Failed
    attempts count towards the same lockout as the sign-in page: 429 once the account or the client
    address is locked.
    """

    authentication_classes: list = []
    permission_classes = [AllowAny]

    class InputSerializer(serializers.Serializer):
        username = serializers.CharField(max_length=150)
        password = serializers.CharField(max_length=4096, trim_whitespace=False, style={"input_type": "password"})
        name = serializers.CharField(max_length=100, default="obtained with a password")
        expires_in_days = serializers.IntegerField(min_value=1, max_value=3650, required=False, allow_null=True)

    class OutputSerializer(serializers.Serializer):
        token = serializers.CharField(help_text="The key: send it as `Authorization: Token <key>`. Shown only now.")
        name = serializers.CharField()
        expires_at = serializers.DateTimeField(allow_null=True)

    @extend_schema(
        auth=[],
        operation_id="auth_token_create",
        request=InputSerializer,
        responses={200: OutputSerializer},
    )
    def post(self, request: Request) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        given = data.validated_data
        user = authenticate(request._request, username=given["username"], password=given["password"])
        if getattr(request._request, "axes_locked_out", False):
            raise LockedOut(lockout_message())
        if user is None or not user.is_active:
            raise ValidationFailed(
                "Unable to sign in with the given username and password.", details={"password": "wrong or inactive"}
            )
        days = given.get("expires_in_days")
        expires_at = timezone.now() + timedelta(days=days) if days else None
        token, key = api_token_create(user=user, name=given["name"], expires_at=expires_at)
        body = {"token": key, "name": token.name, "expires_at": token.expires_at}
        # 200, not 201: DRF's obtain-token endpoint, which clients were written against, answered 200.
        return Response(self.OutputSerializer(body).data)


class LockedOut(exceptions.APIException):
    status_code = 429
    default_code = "locked_out"
