"""REST API of the drift app under /api/v1/drift/ (one APIView per operation).

Roles: reading (catalogue, jobs, results, alerts, lab residuals and metrics) needs ``view_process``;
ad hoc runs, jobs (create, change, delete, run) and ledger refreshes need ``run_drift`` (modelers,
admins); acknowledging an alert needs ``run_drift`` *or* ``flag_points``, so the operators who watch the
process can acknowledge what they have seen (managers only read).

Errors: a bad detector parameter is a 400 whose message and ``details.params`` name the parameter; an
unknown detector is a 400 naming ``detector`` (404 on ``GET detectors/<key>``); a window without data
is a 400 with code ``no_data``.
"""
from __future__ import annotations

import math
from typing import Any

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.common.errors import ValidationFailed
from apps.common.pagination import StandardPagination
from apps.common.permissions import capability

from . import selectors, services
from .models import Alert, DriftJob, DriftResult, ResultStatus, ResultTrigger, Severity, VerdictRule

CanView = capability("view_process")
CanRun = capability("run_drift")


class CanAcknowledge(BasePermission):
    """``run_drift`` or ``flag_points``."""

    message = "Your role does not allow acknowledging alerts."

    def has_permission(self, request: Request, view: APIView) -> bool:
        user = request.user
        if not (user and user.is_authenticated and user.is_active):
            return False
        return user.has_perm("accounts.run_drift") or user.has_perm("accounts.flag_points")


def _finite_or_none(value: float | None) -> float | None:
    return value if value is None or math.isfinite(value) else None


def _paginated(request: Request, view: APIView, queryset: Any, serializer: type[serializers.Serializer]) -> Response:
    paginator = StandardPagination()
    page = paginator.paginate_queryset(queryset, request, view=view)
    return paginator.get_paginated_response(serializer(page, many=True).data)


def _deployment(value: Any, field: str = "deployment") -> Any:
    from apps.orchestrator.models import Deployment

    queryset = Deployment.objects.select_related("soft_sensor__project", "pinned_version")
    found = (queryset.filter(pk=int(value)) if str(value).isdigit() else queryset.filter(name=str(value))).first()
    if found is None:
        raise ValidationFailed(f"{field}: no deployment {value!r}", details={field: str(value)})
    return found


def _soft_sensor(project_id: Any, model_id: Any) -> Any:
    from apps.registry.models import SoftSensor

    if not project_id or not model_id:
        raise ValidationFailed("model_id: give project_id and model_id to name a soft sensor",
                               details={"model_id": "project_id and model_id are both required"})
    found = (SoftSensor.objects.select_related("project").prefetch_related("versions", "aliases")
             .filter(project__project_id=project_id, model_id=model_id).first())
    if found is None:
        raise ValidationFailed(f"model_id: no soft sensor {model_id} in project {project_id}",
                               details={"model_id": model_id, "project_id": project_id})
    return found


def _target_fields(data: dict[str, Any]) -> dict[str, Any]:
    """``deployment`` (id or name) or ``project_id`` + ``model_id`` → model rows (absent keys stay absent)."""
    data = dict(data)
    out: dict[str, Any] = {}
    if "deployment" in data:
        value = data.pop("deployment")
        out["deployment"] = _deployment(value) if value not in (None, "") else None
    project_id, model_id = data.pop("project_id", None), data.pop("model_id", None)
    if project_id or model_id:
        out["soft_sensor"] = _soft_sensor(project_id, model_id)
    return {**data, **out}


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
        return _finite_or_none(result.score)

    def get_threshold(self, result: DriftResult) -> float | None:
        return _finite_or_none(result.threshold)


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
        data = _target_fields(serializer.validated_data)
        result, stored = services.drift_run_ad_hoc(user=request.user, **data)
        body = {**ResultOutput(result).data, "stored": stored}
        return Response(body, status=status.HTTP_201_CREATED if stored else status.HTTP_200_OK)


class ResultListApi(APIView):
    """Results, newest first, paginated; filters: job, deployment, detector, drift, status, trigger, since, until."""

    permission_classes = [CanView]

    class ResultFilter(serializers.Serializer):
        job = serializers.IntegerField(required=False)
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
        responses=ResultOutput(many=True), operation_id="drift_result_list",
    )
    def get(self, request: Request) -> Response:
        filters = self.ResultFilter(data=request.query_params)
        filters.is_valid(raise_exception=True)
        return _paginated(request, self, selectors.result_list(**filters.validated_data), ResultOutput)


class ResultDetailApi(APIView):
    permission_classes = [CanView]

    @extend_schema(responses=ResultOutput, operation_id="drift_result_detail")
    def get(self, request: Request, result_id: int) -> Response:
        return Response(ResultOutput(selectors.result_get(result_id=result_id)).data)


# -- jobs -------------------------------------------------------------------------------------------

class JobOutput(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    description = serializers.CharField()
    deployment = serializers.SerializerMethodField()
    project_id = serializers.SerializerMethodField()
    model_id = serializers.SerializerMethodField()
    detector = serializers.CharField()
    params = serializers.JSONField()
    variables = serializers.ListField(child=serializers.CharField())
    reference = serializers.JSONField()
    test = serializers.JSONField()
    verdict_rule = serializers.CharField()
    calibration = serializers.JSONField()
    schedule_seconds = serializers.IntegerField(allow_null=True)
    enabled = serializers.BooleanField()
    last_run_at = serializers.DateTimeField(allow_null=True)
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()

    def get_deployment(self, job: DriftJob) -> str | None:
        return job.deployment.name if job.deployment_id else None

    def _soft_sensor(self, job: DriftJob) -> Any:
        return job.soft_sensor if job.soft_sensor_id else job.deployment.soft_sensor

    def get_project_id(self, job: DriftJob) -> str:
        return self._soft_sensor(job).project.project_id

    def get_model_id(self, job: DriftJob) -> str:
        return self._soft_sensor(job).model_id


class JobInput(serializers.Serializer):
    """A job watches a ``deployment`` (id or name) or a soft sensor (``project_id`` + ``model_id``)."""

    name = serializers.SlugField(max_length=100)
    description = serializers.CharField(required=False, allow_blank=True, default="")
    deployment = serializers.CharField(required=False, allow_null=True)
    project_id = serializers.CharField(required=False)
    model_id = serializers.CharField(required=False)
    detector = serializers.CharField()
    params = serializers.JSONField(required=False, default=dict)
    variables = serializers.ListField(child=serializers.CharField(), required=False, default=list)
    reference = serializers.JSONField()
    test = serializers.JSONField()
    verdict_rule = serializers.ChoiceField(choices=VerdictRule.choices, required=False, default=VerdictRule.CALIBRATED)
    calibration = serializers.JSONField(required=False, default=dict)
    schedule_seconds = serializers.IntegerField(required=False, allow_null=True, default=None,
                                                min_value=services.MIN_SCHEDULE_SECONDS)
    enabled = serializers.BooleanField(required=False, default=True)


class JobListApi(APIView):
    permission_classes = [CanView]

    class JobFilter(serializers.Serializer):
        deployment = serializers.CharField(required=False)
        soft_sensor = serializers.CharField(required=False)
        detector = serializers.CharField(required=False)
        enabled = serializers.BooleanField(required=False, allow_null=True, default=None)

    @extend_schema(
        parameters=[OpenApiParameter("deployment", str), OpenApiParameter("soft_sensor", str, description="model ID"),
                    OpenApiParameter("detector", str), OpenApiParameter("enabled", bool),
                    OpenApiParameter("page", int), OpenApiParameter("page_size", int)],
        responses=JobOutput(many=True), operation_id="drift_job_list",
    )
    def get(self, request: Request) -> Response:
        filters = self.JobFilter(data=request.query_params)
        filters.is_valid(raise_exception=True)
        return _paginated(request, self, selectors.job_list(**filters.validated_data), JobOutput)


class JobCreateApi(APIView):
    permission_classes = [CanRun]

    @extend_schema(request=JobInput, responses={201: JobOutput}, operation_id="drift_job_create")
    def post(self, request: Request) -> Response:
        serializer = JobInput(data=request.data)
        serializer.is_valid(raise_exception=True)
        job = services.drift_job_create(user=request.user, **_target_fields(serializer.validated_data))
        return Response(JobOutput(selectors.job_get(job_id=job.pk)).data, status=status.HTTP_201_CREATED)


class JobDetailApi(APIView):
    permission_classes = [CanView]

    @extend_schema(responses=JobOutput, operation_id="drift_job_detail")
    def get(self, request: Request, job_id: int) -> Response:
        return Response(JobOutput(selectors.job_get(job_id=job_id)).data)


class JobUpdateApi(APIView):
    """Change some fields (partial update); the job is validated again as a whole."""

    permission_classes = [CanRun]

    @extend_schema(request=JobInput(partial=True), responses=JobOutput, operation_id="drift_job_update")
    def patch(self, request: Request, job_id: int) -> Response:
        job = selectors.job_get(job_id=job_id)
        serializer = JobInput(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        given = {k: v for k, v in serializer.validated_data.items() if k in request.data}
        services.drift_job_update(job=job, data=_target_fields(given))
        return Response(JobOutput(selectors.job_get(job_id=job.pk)).data)


class JobDeleteApi(APIView):
    permission_classes = [CanRun]

    @extend_schema(request=None, responses={204: None}, operation_id="drift_job_delete")
    def post(self, request: Request, job_id: int) -> Response:
        services.drift_job_delete(job=selectors.job_get(job_id=job_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


class JobRunApi(APIView):
    """Run the job now, in the request (a few seconds at most); the stored result is returned.

    A run that cannot score is stored as ``failed`` and returned with 200 and its error.
    """

    permission_classes = [CanRun]

    @extend_schema(request=None, responses={201: ResultOutput}, operation_id="drift_job_run")
    def post(self, request: Request, job_id: int) -> Response:
        result = services.drift_job_run(job=selectors.job_get(job_id=job_id), trigger=ResultTrigger.MANUAL,
                                        user=request.user)
        code = status.HTTP_201_CREATED if result.status == ResultStatus.SUCCEEDED else status.HTTP_200_OK
        return Response(ResultOutput(result).data, status=code)


# -- alerts -----------------------------------------------------------------------------------------

class AlertOutput(serializers.Serializer):
    id = serializers.IntegerField()
    job = serializers.IntegerField(source="job_id")
    job_name = serializers.CharField(source="job.name")
    deployment = serializers.SerializerMethodField()
    severity = serializers.CharField()
    message = serializers.CharField()
    occurrences = serializers.IntegerField()
    result = serializers.IntegerField(source="result_id")
    last_result = serializers.IntegerField(source="last_result_id")
    open = serializers.BooleanField(source="is_open")
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()
    acknowledged_by = serializers.SerializerMethodField()
    acknowledged_at = serializers.DateTimeField(allow_null=True)
    acknowledge_note = serializers.CharField()

    def get_deployment(self, alert: Alert) -> str | None:
        return alert.job.deployment.name if alert.job.deployment_id else None

    def get_acknowledged_by(self, alert: Alert) -> str | None:
        return alert.acknowledged_by.get_username() if alert.acknowledged_by_id else None


class AlertListApi(APIView):
    """Alerts, newest first, paginated; filters: state (open / acknowledged), job, deployment, severity."""

    permission_classes = [CanView]

    class AlertFilter(serializers.Serializer):
        state = serializers.ChoiceField(choices=[("open", "open"), ("acknowledged", "acknowledged")], required=False)
        job = serializers.IntegerField(required=False)
        deployment = serializers.CharField(required=False)
        severity = serializers.ChoiceField(choices=Severity.choices, required=False)

    @extend_schema(
        parameters=[OpenApiParameter("state", str, enum=["open", "acknowledged"]), OpenApiParameter("job", int),
                    OpenApiParameter("deployment", str), OpenApiParameter("severity", str, enum=Severity.values),
                    OpenApiParameter("page", int), OpenApiParameter("page_size", int)],
        responses=AlertOutput(many=True), operation_id="drift_alert_list",
    )
    def get(self, request: Request) -> Response:
        filters = self.AlertFilter(data=request.query_params)
        filters.is_valid(raise_exception=True)
        return _paginated(request, self, selectors.alert_list(**filters.validated_data), AlertOutput)


class AlertAcknowledgeApi(APIView):
    """Acknowledge an open alert (409 when it already is); the job's next drift verdict opens a new one."""

    permission_classes = [CanAcknowledge]

    class AlertAcknowledgeInput(serializers.Serializer):
        note = serializers.CharField(required=False, allow_blank=True, default="", max_length=2000)

    @extend_schema(request=AlertAcknowledgeInput, responses=AlertOutput, operation_id="drift_alert_acknowledge")
    def post(self, request: Request, alert_id: int) -> Response:
        serializer = self.AlertAcknowledgeInput(data=request.data)
        serializer.is_valid(raise_exception=True)
        alert = services.alert_acknowledge(alert=selectors.alert_get(alert_id=alert_id), user=request.user,
                                           note=serializer.validated_data["note"])
        return Response(AlertOutput(selectors.alert_get(alert_id=alert.pk)).data)


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
                   responses=LabResidualOutput(many=True), operation_id="drift_lab_residual_list")
    def get(self, request: Request) -> Response:
        filters = LabFilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        data = dict(filters.validated_data)
        data["deployment"] = _deployment(data["deployment"])
        return _paginated(request, self, selectors.lab_residual_list(**data), LabResidualOutput)


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
        data["deployment"] = _deployment(data["deployment"])
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
        deployment = _deployment(data["deployment"])
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
        return Response(self.LabSettingsOutput(selectors.lab_settings_get(deployment=_deployment(value))).data)


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
        deployment = _deployment(data.pop("deployment"))
        settings_row = services.lab_settings_update(deployment=deployment, data=data)
        return Response(LabSettingsApi.LabSettingsOutput(settings_row).data)
