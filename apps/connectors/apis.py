"""REST API of the connectors app under /api/v1/connectors/ (one APIView per operation).

Reads need ``view_process``; changing sources and publications needs ``manage_pipeline`` (modelers,
admins). Passwords are write-only: outputs say only ``has_password``.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.common.errors import ValidationFailed
from apps.common.pagination import page_serializer, paginated_response
from apps.common.permissions import capability
from apps.tsdb.types import from_ns

from . import selectors, services
from .models import DeliveryStatus, SourceKind

CanView = capability("view_process")
CanManage = capability("manage_pipeline")


class RuleSerializer(serializers.Serializer):
    pattern = serializers.CharField(max_length=500)
    project_name = serializers.CharField(max_length=128)
    device_id = serializers.CharField(max_length=128, required=False, default="{device_id}")
    batch_id = serializers.CharField(max_length=128)
    source = serializers.CharField(max_length=128, required=False, default="sensor")
    observed_property = serializers.CharField(max_length=128, required=False, default="{observed_property}")
    unit = serializers.CharField(max_length=64, required=False, allow_blank=True, default="")
    scale = serializers.FloatField(required=False, default=1.0)
    offset = serializers.FloatField(required=False, default=0.0)
    sampling_interval_ms = serializers.IntegerField(required=False, min_value=1, max_value=3_600_000, default=1000)
    deadband = serializers.FloatField(required=False, min_value=0.0, default=0.0)


class StatusOutput(serializers.Serializer):
    connected = serializers.BooleanField()
    state = serializers.CharField()
    reporting = serializers.BooleanField()
    last_message_at = serializers.DateTimeField(allow_null=True)
    messages_per_second = serializers.FloatField()
    messages_total = serializers.IntegerField()
    points_total = serializers.IntegerField()
    errors_total = serializers.IntegerField()
    last_error = serializers.CharField()
    reported_at = serializers.DateTimeField(allow_null=True)


class DataSourceOutput(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    kind = serializers.CharField()
    url = serializers.CharField()
    enabled = serializers.BooleanField()
    username = serializers.CharField()
    has_password = serializers.BooleanField()
    tls_ca_certificate = serializers.CharField()
    client_id = serializers.CharField()
    session_expiry_seconds = serializers.IntegerField()
    config_version = serializers.IntegerField()
    rules = RuleSerializer(many=True, source="rules.all")
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()


class DataSourceInput(serializers.Serializer):
    """A source; ``password`` is write-only (omit to keep the stored one, "" to clear it)."""

    name = serializers.SlugField(max_length=100)
    kind = serializers.ChoiceField(choices=SourceKind.values)
    url = serializers.CharField(max_length=500)
    enabled = serializers.BooleanField(required=False, default=True)
    username = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    password = serializers.CharField(
        max_length=500, required=False, allow_blank=True, write_only=True, trim_whitespace=False
    )
    tls_ca_certificate = serializers.CharField(max_length=20000, required=False, allow_blank=True, default="")
    client_id = serializers.CharField(max_length=100, required=False, allow_blank=True, default="")
    session_expiry_seconds = serializers.IntegerField(required=False, min_value=0, max_value=30 * 86400, default=86400)
    rules = RuleSerializer(many=True, required=False, default=list)


def _split(data: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]] | None, str | None]:
    data = dict(data)
    return data, data.pop("rules", None), data.pop("password", None)


class DataSourceListApi(APIView):
    permission_classes = [CanView]

    @extend_schema(responses=DataSourceOutput(many=True), operation_id="connectors_source_list")
    def get(self, request: Request) -> Response:
        return Response(DataSourceOutput(selectors.data_source_list(), many=True).data)


class DataSourceCreateApi(APIView):
    permission_classes = [CanManage]

    @extend_schema(request=DataSourceInput, responses={201: DataSourceOutput}, operation_id="connectors_source_create")
    def post(self, request: Request) -> Response:
        serializer = DataSourceInput(data=request.data)
        serializer.is_valid(raise_exception=True)
        data, rules, password = _split(serializer.validated_data)
        source = services.data_source_create(rules=rules or [], password=password, **data)
        return Response(
            DataSourceOutput(selectors.data_source_get(data_source_id=source.pk)).data, status=status.HTTP_201_CREATED
        )


class DataSourceDetailApi(APIView):
    permission_classes = [CanView]

    @extend_schema(responses=DataSourceOutput, operation_id="connectors_source_detail")
    def get(self, request: Request, data_source_id: int) -> Response:
        return Response(DataSourceOutput(selectors.data_source_get(data_source_id=data_source_id)).data)


class DataSourceUpdateApi(APIView):
    """Partial update; ``rules``, when given, replace every rule; the running connector applies it."""

    permission_classes = [CanManage]

    @extend_schema(
        request=DataSourceInput(partial=True), responses=DataSourceOutput, operation_id="connectors_source_update"
    )
    def patch(self, request: Request, data_source_id: int) -> Response:
        source = selectors.data_source_get(data_source_id=data_source_id)
        serializer = DataSourceInput(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        data, rules, password = _split({k: v for k, v in serializer.validated_data.items() if k in request.data})
        services.data_source_update(data_source=source, data=data, rules=rules, password=password)
        return Response(DataSourceOutput(selectors.data_source_get(data_source_id=source.pk)).data)


class DataSourceDeleteApi(APIView):
    permission_classes = [CanManage]

    @extend_schema(request=None, responses={204: None}, operation_id="connectors_source_delete")
    def post(self, request: Request, data_source_id: int) -> Response:
        services.data_source_delete(data_source=selectors.data_source_get(data_source_id=data_source_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


class SourceErrorOutput(serializers.Serializer):
    at = serializers.DateTimeField()
    kind = serializers.CharField()
    address = serializers.CharField()
    message = serializers.CharField()
    excerpt = serializers.CharField()


class DataSourceStatusApi(APIView):
    """What the connectors process last reported for the source, and its recent errors."""

    permission_classes = [CanView]

    class OutputSerializer(serializers.Serializer):
        name = serializers.CharField()
        status = StatusOutput()
        errors = SourceErrorOutput(many=True)

    @extend_schema(responses=OutputSerializer, operation_id="connectors_source_status")
    def get(self, request: Request, data_source_id: int) -> Response:
        source = selectors.data_source_get(data_source_id=data_source_id)
        health = next(h for h in selectors.source_health() if h.name == source.name)
        body = {"name": source.name, "status": health.as_dict(), "errors": selectors.source_errors(data_source=source)}
        return Response(self.OutputSerializer(body).data)


# ------------------------------------------------------------------------------------------ publications


class PublicationOutput(serializers.Serializer):
    id = serializers.IntegerField()
    deployment = serializers.CharField(source="deployment.name")
    deployment_id = serializers.IntegerField()
    connection = serializers.CharField(source="connection.name")
    kind = serializers.CharField(source="connection.kind")
    target = serializers.CharField()
    enabled = serializers.BooleanField()
    retain = serializers.BooleanField()
    max_age_seconds = serializers.IntegerField()
    stale_after_seconds = serializers.IntegerField(allow_null=True)


class PublicationInput(serializers.Serializer):
    """Where a deployment's estimates go: a data source (the connection) and a topic or node id."""

    deployment = serializers.CharField(help_text="Deployment id or name.")
    connection = serializers.CharField(help_text="Data source id or name.")
    target = serializers.CharField(max_length=500)
    enabled = serializers.BooleanField(required=False, default=True)
    retain = serializers.BooleanField(required=False, default=True)
    max_age_seconds = serializers.IntegerField(required=False, min_value=1, max_value=30 * 86400, default=600)
    stale_after_seconds = serializers.IntegerField(required=False, allow_null=True, min_value=1, default=None)


def _resolve(data: dict[str, Any]) -> dict[str, Any]:
    from apps.orchestrator.selectors import deployment_get

    data = dict(data)
    if "deployment" in data:
        data["deployment"] = deployment_get(deployment_id=data["deployment"])
    if "connection" in data:
        data["connection"] = selectors.data_source_get(data_source_id=data["connection"])
    return data


class PublicationListApi(APIView):
    permission_classes = [CanView]

    @extend_schema(responses=PublicationOutput(many=True), operation_id="connectors_publication_list")
    def get(self, request: Request) -> Response:
        return Response(PublicationOutput(selectors.publication_list(), many=True).data)


class PublicationCreateApi(APIView):
    permission_classes = [CanManage]

    @extend_schema(
        request=PublicationInput, responses={201: PublicationOutput}, operation_id="connectors_publication_create"
    )
    def post(self, request: Request) -> Response:
        serializer = PublicationInput(data=request.data)
        serializer.is_valid(raise_exception=True)
        publication = services.publication_create(**_resolve(serializer.validated_data))
        return Response(
            PublicationOutput(selectors.publication_get(publication_id=publication.pk)).data,
            status=status.HTTP_201_CREATED,
        )


class PublicationUpdateApi(APIView):
    permission_classes = [CanManage]

    @extend_schema(
        request=PublicationInput(partial=True),
        responses=PublicationOutput,
        operation_id="connectors_publication_update",
    )
    def patch(self, request: Request, publication_id: int) -> Response:
        publication = selectors.publication_get(publication_id=publication_id)
        serializer = PublicationInput(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        data = _resolve({k: v for k, v in serializer.validated_data.items() if k in request.data})
        services.publication_update(publication=publication, data=data)
        return Response(PublicationOutput(selectors.publication_get(publication_id=publication_id)).data)


class PublicationDeleteApi(APIView):
    permission_classes = [CanManage]

    @extend_schema(request=None, responses={204: None}, operation_id="connectors_publication_delete")
    def post(self, request: Request, publication_id: int) -> Response:
        services.publication_delete(publication=selectors.publication_get(publication_id=publication_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


class DeliveryOutput(serializers.Serializer):
    id = serializers.IntegerField()
    publication = serializers.IntegerField(source="publication_id")
    deployment = serializers.CharField(source="publication.deployment.name")
    group = serializers.SerializerMethodField()
    observed_property = serializers.CharField()
    snapshot_time = serializers.SerializerMethodField()
    destination = serializers.CharField()
    value = serializers.FloatField(allow_null=True)
    quality = serializers.CharField()
    status_code = serializers.IntegerField()
    reasons = serializers.CharField()
    status = serializers.CharField()
    attempt = serializers.IntegerField()
    error = serializers.CharField()
    at = serializers.DateTimeField()

    def get_group(self, delivery: Any) -> str:
        return f"{delivery.project_name}/{delivery.device_id}/{delivery.batch_id}"

    def get_snapshot_time(self, delivery: Any) -> str | None:
        return from_ns(delivery.snapshot_ns).isoformat() if delivery.snapshot_ns is not None else None


class DeliveryListApi(APIView):
    """The delivery log, newest first, paginated: what was sent where, with which quality."""

    permission_classes = [CanView]

    class FilterSerializer(serializers.Serializer):
        publication = serializers.IntegerField(required=False, min_value=1)
        status = serializers.ChoiceField(choices=DeliveryStatus.values, required=False)
        since = serializers.DateTimeField(required=False)

    @extend_schema(
        parameters=[FilterSerializer],
        responses=page_serializer(DeliveryOutput(many=True), "PaginatedDeliveryList"),
        operation_id="connectors_delivery_list",
    )
    def get(self, request: Request) -> Response:
        filters = self.FilterSerializer(data=request.query_params)
        if not filters.is_valid():
            raise ValidationFailed("Invalid filter.", details=filters.errors)
        return paginated_response(request, self, selectors.delivery_list(**filters.validated_data), DeliveryOutput)
