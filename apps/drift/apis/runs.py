"""The detector catalogue, ad hoc runs and stored results."""
from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.common.fields import id_field
from apps.common.pagination import page_serializer, paginated_response

from .. import selectors, services
from ..models import DriftResult, ResultStatus, ResultTrigger, VerdictRule
from .common import CanRun, CanView, finite_or_none, target_fields

# -- catalogue --------------------------------------------------------------------------------------

class ParameterOutput(serializers.Serializer):
    name = serializers.CharField()
    label = serializers.CharField()
    type = serializers.CharField()
    default = serializers.JSONField()
    description = serializers.CharField()
    choices = serializers.ListField(child=serializers.JSONField())
    bounds = serializers.DictField(child=serializers.FloatField())


class DetectorOutput(serializers.Serializer):
    key = serializers.CharField()
    label = serializers.CharField()
    kind = serializers.CharField()
    mode = serializers.CharField()
    input = serializers.CharField()
    description = serializers.CharField()
    references = serializers.ListField(child=serializers.CharField())
    parameters = ParameterOutput(many=True)
    schema = serializers.JSONField(help_text="JSON Schema (draft 2020-12) of the parameters.")


class DetectorListApi(APIView):
    """The detector catalogue: metadata, parameters (name, type, default, tooltip, bounds) and a JSON Schema."""

    permission_classes = [CanView]

    @extend_schema(responses=DetectorOutput(many=True), operation_id="drift_detector_list")
    def get(self, request: Request) -> Response:
        return Response(DetectorOutput(selectors.detector_catalogue(), many=True).data)


class DetectorDetailApi(APIView):
    permission_classes = [CanView]

    @extend_schema(responses=DetectorOutput, operation_id="drift_detector_detail")
    def get(self, request: Request, key: str) -> Response:
        return Response(DetectorOutput(selectors.detector_get(key=key)).data)


# -- results ----------------------------------------------------------------------------------------

class ResultOutput(serializers.Serializer):
    id = serializers.IntegerField(allow_null=True)
    job = serializers.IntegerField(source="job_id", allow_null=True)
    job_name = serializers.SerializerMethodField()
    deployment = serializers.SerializerMethodField()
    soft_sensor = serializers.SerializerMethodField()
    trigger = serializers.CharField()
    status = serializers.CharField()
    error = serializers.CharField()
    detector = serializers.CharField()
    params = serializers.JSONField()
    variables = serializers.ListField(child=serializers.CharField())
    drift = serializers.BooleanField()
    score = serializers.SerializerMethodField(help_text="null when infinite (a calibrated threshold of 0 was exceeded)")
    threshold = serializers.SerializerMethodField()
    p_value = serializers.FloatField(allow_null=True)
    detection_index = serializers.IntegerField(allow_null=True)
    verdict_rule = serializers.CharField()
    explanation = serializers.CharField()
    details = serializers.JSONField()
    reference_window = serializers.JSONField()
    test_window = serializers.JSONField()
    runtime_ms = serializers.FloatField()
    created_at = serializers.DateTimeField(allow_null=True)

    def get_job_name(self, result: DriftResult) -> str | None:
        return result.job.name if result.job_id else None

    def get_deployment(self, result: DriftResult) -> str | None:
        return result.deployment.name if result.deployment_id else None

    def get_soft_sensor(self, result: DriftResult) -> str | None:
        return result.soft_sensor.model_id if result.soft_sensor_id else None

    def get_score(self, result: DriftResult) -> float | None:
        return finite_or_none(result.score)

    def get_threshold(self, result: DriftResult) -> float | None:
        return finite_or_none(result.threshold)


class DriftRunApi(APIView):
    """Ad hoc run: detector, parameters, variables, windows → result (stored unless ``store`` is false).

    Windows come from the store for a ``deployment`` (id or name) or a soft sensor (``project_id`` +
    ``model_id``), or inline: ``{"kind": "values", "rows": [[...], ...]}`` for both reference and test.
    Stored ad hoc results have trigger ``ad_hoc`` and no job; they never raise alerts.
    """

    permission_classes = [CanRun]

    class DriftRunInput(serializers.Serializer):
        detector = serializers.CharField()
        params = serializers.JSONField(required=False, default=dict)
        variables = serializers.ListField(child=serializers.CharField(), required=False, default=list)
        deployment = serializers.CharField(required=False)
        project_id = serializers.CharField(required=False)
        model_id = serializers.CharField(required=False)
        reference = serializers.JSONField()
        test = serializers.JSONField()
        verdict_rule = serializers.ChoiceField(choices=VerdictRule.choices, required=False,
                                               default=VerdictRule.CALIBRATED)
        calibration = serializers.JSONField(required=False, default=dict)
        store = serializers.BooleanField(required=False, default=True)

    class DriftRunOutput(ResultOutput):
        stored = serializers.BooleanField()

    @extend_schema(request=DriftRunInput, responses={200: DriftRunOutput, 201: DriftRunOutput},
                   operation_id="drift_run")
    def post(self, request: Request) -> Response:
        serializer = self.DriftRunInput(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = target_fields(serializer.validated_data)
        result, stored = services.drift_run_ad_hoc(user=request.user, **data)
        body = {**ResultOutput(result).data, "stored": stored}
        return Response(body, status=status.HTTP_201_CREATED if stored else status.HTTP_200_OK)


class ResultListApi(APIView):
    """Results, newest first, paginated; filters: job, deployment, detector, drift, status, trigger, since, until."""

    permission_classes = [CanView]

    class ResultFilter(serializers.Serializer):
        job = id_field(required=False)
        deployment = serializers.CharField(required=False)
        detector = serializers.CharField(required=False)
        drift = serializers.BooleanField(required=False, allow_null=True, default=None)
        status = serializers.ChoiceField(choices=ResultStatus.choices, required=False)
        trigger = serializers.ChoiceField(choices=ResultTrigger.choices, required=False)
        since = serializers.DateTimeField(required=False)
        until = serializers.DateTimeField(required=False)

    @extend_schema(
        parameters=[
            OpenApiParameter("job", int), OpenApiParameter("deployment", str, description="id or name"),
            OpenApiParameter("detector", str), OpenApiParameter("drift", bool),
            OpenApiParameter("status", str, enum=ResultStatus.values),
            OpenApiParameter("trigger", str, enum=ResultTrigger.values),
            OpenApiParameter("since", str, description="ISO 8601"), OpenApiParameter("until", str),
            OpenApiParameter("page", int), OpenApiParameter("page_size", int),
        ],
        responses=page_serializer(ResultOutput(many=True), "PaginatedDriftResultList"),
        operation_id="drift_result_list",
    )
    def get(self, request: Request) -> Response:
        filters = self.ResultFilter(data=request.query_params)
        filters.is_valid(raise_exception=True)
        return paginated_response(request, self, selectors.result_list(**filters.validated_data), ResultOutput)


class ResultDetailApi(APIView):
    permission_classes = [CanView]

    @extend_schema(responses=ResultOutput, operation_id="drift_result_detail")
    def get(self, request: Request, result_id: int) -> Response:
        return Response(ResultOutput(selectors.result_get(result_id=result_id)).data)


