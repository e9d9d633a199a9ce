"""The residual ledger: rows, metrics, refresh, settings."""
from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.common.errors import ValidationFailed
from apps.common.pagination import page_serializer, paginated_response

from .. import selectors, services
from .common import CanRun, CanView, deployment_named

# -- lab scoring ------------------------------------------------------------------------------------

class LabResidualOutput(serializers.Serializer):
    id = serializers.IntegerField()
    group = serializers.CharField(source="group_label")
    project_name = serializers.CharField()
    device_id = serializers.CharField()
    batch_id = serializers.CharField()
    target = serializers.CharField()
    lab_time = serializers.DateTimeField()
    prediction_time = serializers.DateTimeField()
    lab_value = serializers.FloatField()
    predicted_value = serializers.FloatField()
    residual = serializers.FloatField()
    model_id = serializers.CharField()
    version = serializers.CharField()


class LabFilterSerializer(serializers.Serializer):
    deployment = serializers.CharField()
    batch_id = serializers.CharField(required=False)
    device_id = serializers.CharField(required=False)
    since = serializers.DateTimeField(required=False)
    until = serializers.DateTimeField(required=False)


_LAB_PARAMETERS = [
    OpenApiParameter("deployment", str, required=True, description="id or name"),
    OpenApiParameter("batch_id", str), OpenApiParameter("device_id", str),
    OpenApiParameter("since", str, description="ISO 8601, lab time"), OpenApiParameter("until", str),
]


class LabResidualListApi(APIView):
    """The residual ledger of a deployment (lab − predicted at each lab sample), paginated."""

    permission_classes = [CanView]

    @extend_schema(parameters=[*_LAB_PARAMETERS, OpenApiParameter("page", int), OpenApiParameter("page_size", int)],
                   responses=page_serializer(LabResidualOutput(many=True), "PaginatedLabResidualList"),
                   operation_id="drift_lab_residual_list")
    def get(self, request: Request) -> Response:
        filters = LabFilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        data = dict(filters.validated_data)
        data["deployment"] = deployment_named(data["deployment"])
        return paginated_response(request, self, selectors.lab_residual_list(**data), LabResidualOutput)


class LabRollingOutput(serializers.Serializer):
    lab_time = serializers.DateTimeField()
    lab_value = serializers.FloatField()
    predicted_value = serializers.FloatField()
    residual = serializers.FloatField()
    mae = serializers.FloatField()
    rmse = serializers.FloatField()
    bias = serializers.FloatField()
    n = serializers.IntegerField()


class LabSummaryOutput(serializers.Serializer):
    n = serializers.IntegerField()
    mae = serializers.FloatField(allow_null=True)
    rmse = serializers.FloatField(allow_null=True)
    bias = serializers.FloatField(allow_null=True)


class LabGroupOutput(LabSummaryOutput):
    group = serializers.CharField()
    project_name = serializers.CharField()
    device_id = serializers.CharField()
    batch_id = serializers.CharField()
    rolling = LabRollingOutput(many=True)


class LabMetricsOutput(serializers.Serializer):
    deployment = serializers.CharField()
    window = serializers.IntegerField()
    overall = LabSummaryOutput()
    groups = LabGroupOutput(many=True)


class LabMetricsApi(APIView):
    """MAE, RMSE and bias of a deployment's residuals: overall, per group, and rolling at every lab sample."""

    permission_classes = [CanView]

    class LabMetricsFilter(LabFilterSerializer):
        window = serializers.IntegerField(required=False, min_value=1, max_value=1000)

    @extend_schema(parameters=[*_LAB_PARAMETERS, OpenApiParameter("window", int, description="rolling samples")],
                   responses=LabMetricsOutput, operation_id="drift_lab_metrics")
    def get(self, request: Request) -> Response:
        filters = self.LabMetricsFilter(data=request.query_params)
        filters.is_valid(raise_exception=True)
        data = dict(filters.validated_data)
        data["deployment"] = deployment_named(data["deployment"])
        return Response(LabMetricsOutput(selectors.lab_metrics(**data)).data)


class LabLedgerRefreshApi(APIView):
    """(Re)compute a deployment's residual ledger, for one batch or every batch in scope; idempotent."""

    permission_classes = [CanRun]

    class LabRefreshInput(serializers.Serializer):
        deployment = serializers.CharField()
        batch_id = serializers.CharField(required=False)
        device_id = serializers.CharField(required=False)

    class LabRefreshOutput(serializers.Serializer):
        groups = serializers.IntegerField()
        created = serializers.IntegerField()
        updated = serializers.IntegerField()
        deleted = serializers.IntegerField()
        unchanged = serializers.IntegerField()
        lab_samples_unmatched = serializers.IntegerField()

    @extend_schema(request=LabRefreshInput, responses=LabRefreshOutput, operation_id="drift_lab_refresh")
    def post(self, request: Request) -> Response:
        from apps.tsdb.selectors import groups_list
        from apps.tsdb.types import Collection

        serializer = self.LabRefreshInput(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        deployment = deployment_named(data["deployment"])
        groups = None
        if data.get("batch_id") or data.get("device_id"):
            project_name = deployment.soft_sensor.project.name.lower()  # the time-series project tag
            groups = [
                g.group
                for g in groups_list(collection=Collection.RAW, project_name=project_name)
                if (not data.get("batch_id") or g.group.batch_id == data["batch_id"])
                and (not data.get("device_id") or g.group.device_id == data["device_id"])
            ]
            if not groups:
                raise ValidationFailed("batch_id: no such batch in the store for this deployment's project",
                                       details={"batch_id": data.get("batch_id"), "device_id": data.get("device_id")})
        change = services.lab_ledger_refresh(deployment=deployment, groups=groups)
        return Response(self.LabRefreshOutput(change.as_dict()).data)


class LabSettingsApi(APIView):
    """A deployment's lab-scoring settings (defaults when never set)."""

    permission_classes = [CanView]

    class LabSettingsOutput(serializers.Serializer):
        deployment = serializers.CharField(source="deployment.name")
        target = serializers.CharField()
        lab_property = serializers.CharField()
        tolerance_seconds = serializers.IntegerField()
        rolling_samples = serializers.IntegerField()
        event_k = serializers.FloatField()
        enabled = serializers.BooleanField()

    @extend_schema(parameters=[OpenApiParameter("deployment", str, required=True)], responses=LabSettingsOutput,
                   operation_id="drift_lab_settings")
    def get(self, request: Request) -> Response:
        value = request.query_params.get("deployment")
        if not value:
            raise ValidationFailed("deployment: required", details={"deployment": "required"})
        return Response(self.LabSettingsOutput(selectors.lab_settings_get(deployment=deployment_named(value))).data)


class LabSettingsUpdateApi(APIView):
    """Create or change a deployment's lab-scoring settings (then refresh the ledger to apply them)."""

    permission_classes = [CanRun]

    class LabSettingsInput(serializers.Serializer):
        deployment = serializers.CharField()
        target = serializers.CharField(required=False, allow_blank=True, max_length=200)
        lab_property = serializers.CharField(required=False, allow_blank=True, max_length=200)
        tolerance_seconds = serializers.IntegerField(required=False, min_value=1)
        rolling_samples = serializers.IntegerField(required=False, min_value=1, max_value=1000)
        event_k = serializers.FloatField(required=False, min_value=0.01)
        enabled = serializers.BooleanField(required=False)

    @extend_schema(request=LabSettingsInput, responses=LabSettingsApi.LabSettingsOutput,
                   operation_id="drift_lab_settings_update")
    def post(self, request: Request) -> Response:
        serializer = self.LabSettingsInput(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        deployment = deployment_named(data.pop("deployment"))
        settings_row = services.lab_settings_update(deployment=deployment, data=data)
        return Response(LabSettingsApi.LabSettingsOutput(settings_row).data)
