"""REST API of the notifications app under /api/v1/notifications/ (one APIView per operation).

Everyone who may read process data (``view_process``) manages their own subscriptions and reads their own
deliveries; another user's subscription is a 404. Reading the event log needs ``view_process`` too.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.common.errors import NotFound, ValidationFailed
from apps.common.fields import id_field
from apps.common.pagination import page_serializer, paginated_response
from apps.common.permissions import capability

from . import selectors, services
from .models import Channel, DeliveryStatus, EventKind

CanUse = capability("view_process")


def _deployment(value: Any) -> Any:
    from apps.orchestrator.selectors import deployment_get

    if value in (None, ""):
        return None
    try:
        return deployment_get(deployment_id=value)
    except NotFound:
        raise ValidationFailed(f"deployment: no deployment {value!r}", details={"deployment": str(value)}) from None


class SubscriptionOutput(serializers.Serializer):
    id = serializers.IntegerField()
    deployment = serializers.SerializerMethodField(help_text="Deployment name; null means every deployment.")
    events = serializers.ListField(child=serializers.ChoiceField(choices=EventKind.choices))
    channel = serializers.ChoiceField(choices=Channel.choices)
    url = serializers.CharField()
    secret = serializers.CharField(help_text="Webhook signing secret (yours only; empty for e-mail).")
    enabled = serializers.BooleanField()
    created_at = serializers.DateTimeField()

    def get_deployment(self, subscription: Any) -> str | None:
        return subscription.deployment.name if subscription.deployment_id else None


class SubscriptionInput(serializers.Serializer):
    deployment = serializers.CharField(required=False, allow_blank=True, allow_null=True,
                                       help_text="Deployment id or name; empty for every deployment.")
    events = serializers.ListField(child=serializers.ChoiceField(choices=EventKind.choices), min_length=1)
    channel = serializers.ChoiceField(choices=Channel.choices, default=Channel.EMAIL)
    url = serializers.CharField(required=False, allow_blank=True, default="", max_length=500)
    enabled = serializers.BooleanField(required=False, default=True)


class SubscriptionListApi(APIView):
    """Your subscriptions."""

    permission_classes = [CanUse]

    @extend_schema(parameters=[OpenApiParameter("page", int), OpenApiParameter("page_size", int)],
                   responses=page_serializer(SubscriptionOutput(many=True), "PaginatedNotificationSubscriptionList"),
                   operation_id="notifications_subscription_list")
    def get(self, request: Request) -> Response:
        return paginated_response(request, self, selectors.subscription_list(user=request.user), SubscriptionOutput)


class SubscriptionCreateApi(APIView):
    """Subscribe to events of one deployment (or every deployment) by e-mail or webhook (secret returned)."""

    permission_classes = [CanUse]

    @extend_schema(request=SubscriptionInput, responses={201: SubscriptionOutput},
                   operation_id="notifications_subscription_create")
    def post(self, request: Request) -> Response:
        serializer = SubscriptionInput(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        deployment = _deployment(data.pop("deployment", None))
        subscription = services.subscription_create(user=request.user, deployment=deployment, **data)
        return Response(SubscriptionOutput(subscription).data, status=status.HTTP_201_CREATED)


class SubscriptionUpdateApi(APIView):
    """Change some fields of your subscription."""

    permission_classes = [CanUse]

    @extend_schema(request=SubscriptionInput(partial=True), responses=SubscriptionOutput,
                   operation_id="notifications_subscription_update")
    def post(self, request: Request, subscription_id: int) -> Response:
        subscription = selectors.subscription_get(user=request.user, subscription_id=subscription_id)
        serializer = SubscriptionInput(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        given = {k: v for k, v in serializer.validated_data.items() if k in request.data}
        if "deployment" in given:
            given["deployment"] = _deployment(given["deployment"])
        return Response(SubscriptionOutput(services.subscription_update(subscription=subscription, data=given)).data)


class SubscriptionRotateSecretApi(APIView):
    """A new signing secret for your webhook subscription (the old one stops verifying at once)."""

    permission_classes = [CanUse]

    @extend_schema(request=None, responses=SubscriptionOutput, operation_id="notifications_subscription_rotate")
    def post(self, request: Request, subscription_id: int) -> Response:
        subscription = selectors.subscription_get(user=request.user, subscription_id=subscription_id)
        return Response(SubscriptionOutput(services.subscription_secret_rotate(subscription=subscription)).data)


class SubscriptionDeleteApi(APIView):
    permission_classes = [CanUse]

    @extend_schema(request=None, responses={204: None}, operation_id="notifications_subscription_delete")
    def post(self, request: Request, subscription_id: int) -> Response:
        services.subscription_delete(
            subscription=selectors.subscription_get(user=request.user, subscription_id=subscription_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


class AttemptOutput(serializers.Serializer):
    number = serializers.IntegerField()
    at = serializers.DateTimeField()
    ok = serializers.BooleanField()
    status_code = serializers.IntegerField(allow_null=True)
    error = serializers.CharField()
    duration_ms = serializers.FloatField()


class NotificationDeliveryOutput(serializers.Serializer):
    id = serializers.IntegerField()
    subscription = serializers.IntegerField(source="subscription_id")
    channel = serializers.CharField(source="subscription.channel")
    event = serializers.IntegerField(source="event_id", allow_null=True, help_text="Null: a digest.")
    subject = serializers.SerializerMethodField()
    digest = serializers.IntegerField(source="digest_id", allow_null=True)
    status = serializers.ChoiceField(choices=DeliveryStatus.choices)
    attempts = serializers.IntegerField()
    last_error = serializers.CharField()
    created_at = serializers.DateTimeField()
    sent_at = serializers.DateTimeField(allow_null=True)
    attempt_log = AttemptOutput(many=True)

    def get_subject(self, delivery: Any) -> str:
        return delivery.event.subject if delivery.event_id else "digest"


class DeliveryListApi(APIView):
    """Your deliveries, newest first, with every attempt (the delivery log); filters: status, subscription."""

    permission_classes = [CanUse]

    class DeliveryFilter(serializers.Serializer):
        status = serializers.ChoiceField(choices=DeliveryStatus.choices, required=False)
        subscription = id_field(required=False)

    @extend_schema(parameters=[OpenApiParameter("status", str, enum=DeliveryStatus.values),
                               OpenApiParameter("subscription", int), OpenApiParameter("page", int),
                               OpenApiParameter("page_size", int)],
                   responses=page_serializer(
                       NotificationDeliveryOutput(many=True), "PaginatedNotificationDeliveryList"
                   ),
                   operation_id="notifications_delivery_list")
    def get(self, request: Request) -> Response:
        filters = self.DeliveryFilter(data=request.query_params)
        filters.is_valid(raise_exception=True)
        return paginated_response(request, self, selectors.delivery_list(user=request.user, **filters.validated_data),
                                  NotificationDeliveryOutput)


class EventOutput(serializers.Serializer):
    id = serializers.IntegerField()
    kind = serializers.ChoiceField(choices=EventKind.choices)
    deployment = serializers.IntegerField(source="deployment_id", allow_null=True)
    subject = serializers.CharField()
    body = serializers.CharField()
    created_at = serializers.DateTimeField()


class EventListApi(APIView):
    """Events raised (drift alerts, pipeline failing, validity Bad), newest first; filters: kind, deployment."""

    permission_classes = [CanUse]

    class EventFilter(serializers.Serializer):
        kind = serializers.ChoiceField(choices=EventKind.choices, required=False)
        deployment = id_field(required=False)

    @extend_schema(parameters=[OpenApiParameter("kind", str, enum=EventKind.values),
                               OpenApiParameter("deployment", int), OpenApiParameter("page", int),
                               OpenApiParameter("page_size", int)],
                   responses=page_serializer(EventOutput(many=True), "PaginatedNotificationEventList"),
                   operation_id="notifications_event_list")
    def get(self, request: Request) -> Response:
        filters = self.EventFilter(data=request.query_params)
        filters.is_valid(raise_exception=True)
        return paginated_response(request, self, selectors.event_list(**filters.validated_data), EventOutput)
