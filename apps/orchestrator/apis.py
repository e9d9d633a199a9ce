"""REST API of the orchestrator under /api/v1/orchestrator/ (one APIView per operation).

Reads need ``view_process``; creating, changing, deleting deployments, running and backfilling need
``manage_pipeline`` (modelers and admins); a simulation needs ``manage_models`` (modelers and admins).
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.common.errors import NotFound, ValidationFailed
from apps.common.pagination import page_serializer, paginated_response
from apps.common.permissions import capability
from apps.registry.explanation_apis import EstimateExplanationSerializer
from apps.tsdb.types import GroupKey, from_ns

from . import selectors, services
from .explanations import estimate_explanation
from .models import Deployment, PipelineRun, RunStatus, Trigger
from .simulation import VersionSimulation, simulation_run, simulation_version_get

CanView = capability("view_process")
CanManage = capability("manage_pipeline")
CanSimulate = capability("manage_models")


def _ns_iso(value: int | None) -> str | None:
    return from_ns(value).isoformat() if value is not None else None


class DeploymentOutput(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    description = serializers.CharField()
    project_id = serializers.CharField(source="soft_sensor.project.project_id")
    model_id = serializers.CharField(source="soft_sensor.model_id")
    alias = serializers.CharField()
    pinned_version = serializers.SerializerMethodField()
    device_ids = serializers.ListField(child=serializers.CharField())
    batch_pattern = serializers.CharField()
    live_only = serializers.BooleanField()
    input_mapping = serializers.DictField(child=serializers.CharField())
    max_input_age_seconds = serializers.IntegerField()
    score_from = serializers.DateTimeField(allow_null=True)
    enabled = serializers.BooleanField()
    shadow_of = serializers.CharField(
        source="shadow_of.name", default=None, allow_null=True, help_text="Champion of a shadow (null: none)."
    )
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()

    def get_pinned_version(self, deployment: Deployment) -> int | None:
        return deployment.pinned_version.number if deployment.pinned_version_id else None


class DeploymentInput(serializers.Serializer):
    """Fields of a deployment; the soft sensor is named by project ID and model ID, a pin by its number."""

    name = serializers.SlugField(max_length=100)
    description = serializers.CharField(required=False, allow_blank=True, default="")
    project_id = serializers.CharField()
    model_id = serializers.CharField()
    alias = serializers.SlugField(max_length=64, required=False, allow_blank=True, default="")
    pinned_version = serializers.IntegerField(required=False, allow_null=True, min_value=1, default=None)
    device_ids = serializers.ListField(child=serializers.CharField(max_length=128), required=False, default=list)
    batch_pattern = serializers.CharField(max_length=128, required=False, allow_blank=True, default="")
    live_only = serializers.BooleanField(required=False, default=False)
    input_mapping = serializers.DictField(child=serializers.CharField(max_length=128), required=False, default=dict)
    max_input_age_seconds = serializers.IntegerField(min_value=1, required=False, default=3600)
    score_from = serializers.DateTimeField(required=False, allow_null=True, default=None)
    enabled = serializers.BooleanField(required=False, default=True)
    shadow_of = serializers.CharField(
        required=False, allow_null=True, default=None,
        help_text="Id or name of the champion deployment this one shadows (scope follows it; never published).",
    )


def _resolve_model(data: dict[str, Any], current: Deployment | None = None) -> dict[str, Any]:
    """Turn project_id/model_id/pinned_version numbers into registry rows (400 naming what is unknown)."""
    from apps.registry.selectors import soft_sensor_get, version_get

    data = dict(data)
    project_id = data.pop("project_id", None)
    model_id = data.pop("model_id", None)
    soft_sensor = current.soft_sensor if current else None
    if project_id is not None or model_id is not None:
        project_id = project_id or (current.soft_sensor.project.project_id if current else None)
        model_id = model_id or (current.soft_sensor.model_id if current else None)
        try:
            soft_sensor = soft_sensor_get(project_id=str(project_id), model_id=str(model_id))
        except NotFound:
            raise ValidationFailed(
                f"No soft sensor {model_id} in project {project_id}.",
                details={"model_id": model_id, "project_id": project_id},
            ) from None
        data["soft_sensor"] = soft_sensor
    if "pinned_version" in data:
        number = data["pinned_version"]
        if number is None:
            data["pinned_version"] = None
        else:
            try:
                data["pinned_version"] = version_get(soft_sensor=soft_sensor, number=int(number))
            except NotFound:
                raise ValidationFailed(
                    f"{soft_sensor.model_id} has no version {number}.", details={"pinned_version": number}
                ) from None
    if data.get("shadow_of") not in (None, ""):
        try:
            data["shadow_of"] = selectors.deployment_get(deployment_id=data["shadow_of"])
        except NotFound:
            raise ValidationFailed(
                f"shadow_of: no deployment {data['shadow_of']}.", details={"shadow_of": data["shadow_of"]}
            ) from None
    elif "shadow_of" in data:
        data["shadow_of"] = None
    return data


class DeploymentListApi(APIView):
    permission_classes = [CanView]

    @extend_schema(responses=DeploymentOutput(many=True), operation_id="orchestrator_deployment_list")
    def get(self, request: Request) -> Response:
        return Response(DeploymentOutput(selectors.deployment_list(), many=True).data)


class DeploymentCreateApi(APIView):
    permission_classes = [CanManage]

    @extend_schema(
        request=DeploymentInput, responses={201: DeploymentOutput}, operation_id="orchestrator_deployment_create"
    )
    def post(self, request: Request) -> Response:
        serializer = DeploymentInput(data=request.data)
        serializer.is_valid(raise_exception=True)
        deployment = services.deployment_create(user=request.user, **_resolve_model(serializer.validated_data))
        deployment = selectors.deployment_get(deployment_id=deployment.pk)
        return Response(DeploymentOutput(deployment).data, status=status.HTTP_201_CREATED)


class DeploymentDetailApi(APIView):
    permission_classes = [CanView]

    @extend_schema(responses=DeploymentOutput, operation_id="orchestrator_deployment_detail")
    def get(self, request: Request, deployment_id: int) -> Response:
        return Response(DeploymentOutput(selectors.deployment_get(deployment_id=deployment_id)).data)


class DeploymentUpdateApi(APIView):
    """Change some fields (partial update)."""

    permission_classes = [CanManage]

    @extend_schema(
        request=DeploymentInput(partial=True), responses=DeploymentOutput, operation_id="orchestrator_deployment_update"
    )
    def patch(self, request: Request, deployment_id: int) -> Response:
        deployment = selectors.deployment_get(deployment_id=deployment_id)
        serializer = DeploymentInput(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        given = {k: v for k, v in serializer.validated_data.items() if k in request.data}
        services.deployment_update(deployment=deployment, data=_resolve_model(given, current=deployment))
        return Response(DeploymentOutput(selectors.deployment_get(deployment_id=deployment.pk)).data)


class DeploymentDeleteApi(APIView):
    permission_classes = [CanManage]

    @extend_schema(request=None, responses={204: None}, operation_id="orchestrator_deployment_delete")
    def post(self, request: Request, deployment_id: int) -> Response:
        services.deployment_delete(deployment=selectors.deployment_get(deployment_id=deployment_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


class DeploymentRunApi(APIView):
    """Manual trigger: detect now for this deployment and queue a run per group with new data."""

    permission_classes = [CanManage]

    class OutputSerializer(serializers.Serializer):
        queued = serializers.IntegerField()
        requeued = serializers.IntegerField()
        stale = serializers.IntegerField()

    @extend_schema(request=None, responses={202: OutputSerializer}, operation_id="orchestrator_deployment_run")
    def post(self, request: Request, deployment_id: int) -> Response:
        deployment = selectors.deployment_get(deployment_id=deployment_id)
        counts = services.pipeline_detect(deployment_id=deployment.pk, trigger=Trigger.MANUAL)
        return Response(self.OutputSerializer(counts).data, status=status.HTTP_202_ACCEPTED)


class DeploymentBackfillApi(APIView):
    """Rescore a historical window on a worker; the runs it records (trigger ``backfill``) show progress."""

    permission_classes = [CanManage]

    class InputSerializer(serializers.Serializer):
        start = serializers.DateTimeField()
        end = serializers.DateTimeField()

    class OutputSerializer(serializers.Serializer):
        task_id = serializers.CharField()
        deployment = serializers.CharField()
        start = serializers.DateTimeField()
        end = serializers.DateTimeField()

    @extend_schema(
        request=InputSerializer, responses={202: OutputSerializer}, operation_id="orchestrator_deployment_backfill"
    )
    def post(self, request: Request, deployment_id: int) -> Response:
        deployment = selectors.deployment_get(deployment_id=deployment_id)
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        start, end = serializer.validated_data["start"], serializer.validated_data["end"]
        task_id = services.pipeline_backfill_enqueue(deployment=deployment, start=start, end=end)
        body = {"task_id": task_id, "deployment": deployment.name, "start": start, "end": end}
        return Response(self.OutputSerializer(body).data, status=status.HTTP_202_ACCEPTED)


class WatermarkListApi(APIView):
    """Where each group of a deployment stands: watermark, pending flag, lease, failures."""

    permission_classes = [CanView]

    class OutputSerializer(serializers.Serializer):
        group = serializers.CharField(source="group_label")
        project_name = serializers.CharField()
        device_id = serializers.CharField()
        batch_id = serializers.CharField()
        watermark = serializers.SerializerMethodField()
        dirty_from = serializers.SerializerMethodField()
        pending = serializers.BooleanField()
        leased_until = serializers.DateTimeField(source="lease_expires_at", allow_null=True)
        failures = serializers.IntegerField()
        retry_after = serializers.DateTimeField(allow_null=True)
        last_run_at = serializers.DateTimeField(allow_null=True)

        def get_watermark(self, obj: Any) -> str | None:
            return _ns_iso(obj.watermark_ns)

        def get_dirty_from(self, obj: Any) -> str | None:
            return _ns_iso(obj.dirty_from_ns)

    @extend_schema(responses=OutputSerializer(many=True), operation_id="orchestrator_watermark_list")
    def get(self, request: Request, deployment_id: int) -> Response:
        deployment = selectors.deployment_get(deployment_id=deployment_id)
        return Response(self.OutputSerializer(selectors.watermark_list(deployment=deployment), many=True).data)


class RunOutput(serializers.Serializer):
    id = serializers.IntegerField()
    deployment = serializers.CharField(source="deployment.name")
    deployment_id = serializers.IntegerField()
    group = serializers.CharField(source="group_label")
    project_name = serializers.CharField()
    device_id = serializers.CharField()
    batch_id = serializers.CharField()
    trigger = serializers.CharField()
    status = serializers.CharField()
    model_id = serializers.CharField()
    version = serializers.CharField(source="version_label")
    started_at = serializers.DateTimeField()
    finished_at = serializers.DateTimeField(allow_null=True)
    duration_ms = serializers.FloatField(allow_null=True)
    timings_ms = serializers.SerializerMethodField()
    window = serializers.SerializerMethodField()
    snapshots = serializers.IntegerField()
    predictions = serializers.IntegerField()
    skipped = serializers.IntegerField()
    skipped_reasons = serializers.DictField(child=serializers.IntegerField())
    registry_attempts = serializers.IntegerField()
    worker = serializers.CharField()
    error = serializers.CharField()

    def get_timings_ms(self, run: PipelineRun) -> dict[str, float | None]:
        return {"health": run.health_ms, "detect": run.detect_ms, "infer": run.infer_ms, "store": run.store_ms}

    def get_window(self, run: PipelineRun) -> dict[str, str | None]:
        return {
            "after": _ns_iso(run.window_after_ns),
            "until": _ns_iso(run.window_until_ns),
            "first_snapshot": _ns_iso(run.first_snapshot_ns),
            "last_snapshot": _ns_iso(run.last_snapshot_ns),
        }


class RunListApi(APIView):
    """Pipeline runs, newest first, paginated; filters: status, deployment (id or name), trigger, batch, time."""

    permission_classes = [CanView]

    class FilterSerializer(serializers.Serializer):
        status = serializers.ChoiceField(choices=RunStatus.choices, required=False)
        deployment = serializers.CharField(required=False)
        trigger = serializers.ChoiceField(choices=Trigger.choices, required=False)
        batch_id = serializers.CharField(required=False)
        since = serializers.DateTimeField(required=False)
        until = serializers.DateTimeField(required=False)

    @extend_schema(
        parameters=[
            OpenApiParameter("status", str, enum=RunStatus.values),
            OpenApiParameter("deployment", str),
            OpenApiParameter("trigger", str, enum=Trigger.values),
            OpenApiParameter("batch_id", str),
            OpenApiParameter("since", str, description="ISO 8601; runs started at or after"),
            OpenApiParameter("until", str, description="ISO 8601; runs started at or before"),
            OpenApiParameter("page", int),
            OpenApiParameter("page_size", int),
        ],
        responses=page_serializer(RunOutput(many=True), "PaginatedPipelineRunList"),
        operation_id="orchestrator_run_list",
    )
    def get(self, request: Request) -> Response:
        filters = self.FilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        runs = selectors.run_list(**filters.validated_data)
        return paginated_response(request, self, runs, RunOutput)


class RunDetailApi(APIView):
    permission_classes = [CanView]

    @extend_schema(responses=RunOutput, operation_id="orchestrator_run_detail")
    def get(self, request: Request, run_id: int) -> Response:
        return Response(RunOutput(selectors.run_get(run_id=run_id)).data)


# ------------------------------------------------------------------------------------------- simulation


class BiasUpdateOutput(serializers.Serializer):
    alpha = serializers.FloatField()
    lab_delay_seconds = serializers.IntegerField()
    max_lab_age_seconds = serializers.IntegerField()
    lab_min = serializers.FloatField(allow_null=True)
    lab_max = serializers.FloatField(allow_null=True)
    reset_each_batch = serializers.BooleanField()
    source = serializers.CharField()


class SimulationConfigurationOutput(serializers.Serializer):
    deployment = serializers.CharField(allow_null=True, help_text="whose configuration was used (null: none)")
    input_mapping = serializers.DictField(child=serializers.CharField(), help_text="feature → project variable")
    max_input_age_seconds = serializers.IntegerField()
    bias_update = BiasUpdateOutput(allow_null=True, help_text="null: the raw model only")


class BiasReportOutput(serializers.Serializer):
    used = serializers.IntegerField(help_text="lab samples folded into the bias")
    rejected = serializers.DictField(child=serializers.IntegerField(), help_text="reason → lab samples")
    final = serializers.FloatField(help_text="the bias in force after the last lab result")


class SimulationRowOutput(serializers.Serializer):
    time = serializers.DateTimeField()
    raw = serializers.DictField(child=serializers.FloatField(), help_text="output → raw model estimate")
    bias = serializers.DictField(child=serializers.FloatField(), help_text="output → bias in force")
    corrected = serializers.DictField(child=serializers.FloatField(), help_text="output → raw + bias")
    validity = serializers.CharField(help_text="ok | out_of_range")
    out_of_range_inputs = serializers.ListField(child=serializers.CharField())


class SimulationVersionOutput(serializers.Serializer):
    project_id = serializers.CharField()
    model_id = serializers.CharField()
    number = serializers.IntegerField()
    status = serializers.CharField()


class SimulationGroupOutput(serializers.Serializer):
    project_name = serializers.CharField()
    device_id = serializers.CharField()
    batch_id = serializers.CharField()


class SimulationOutput(serializers.Serializer):
    version = SimulationVersionOutput()
    group = SimulationGroupOutput()
    configuration = SimulationConfigurationOutput()
    features = serializers.ListField(child=serializers.CharField())
    outputs = serializers.ListField(child=serializers.CharField())
    snapshots = serializers.IntegerField(help_text="snapshots read (scored + skipped)")
    rows = serializers.IntegerField(help_text="snapshots scored")
    skipped = serializers.DictField(child=serializers.IntegerField(), help_text="reason → snapshots skipped")
    truncated = serializers.BooleanField(help_text="the batch had more snapshots than one simulation reads")
    bias_report = serializers.DictField(child=BiasReportOutput(), help_text="output → what the bias update did")
    estimates = SimulationRowOutput(many=True)


def simulation_body(simulation: VersionSimulation) -> dict[str, Any]:
    """What the API returns for a simulation (also the shape the serializers above describe)."""
    spec, estimator, estimates = simulation.spec, simulation.estimator, simulation.estimates
    outputs = list(estimates.outputs)
    raw, bias, corrected = estimates.raw.tolist(), estimates.bias.tolist(), estimates.corrected.tolist()
    rows = [
        {
            "time": from_ns(t),
            "raw": dict(zip(outputs, raw[i], strict=True)),
            "bias": dict(zip(outputs, bias[i], strict=True)),
            "corrected": dict(zip(outputs, corrected[i], strict=True)),
            "validity": str(estimates.validity[i].get("verdict") or "ok"),
            "out_of_range_inputs": list(estimates.validity[i].get("inputs") or []),
        }
        for i, t in enumerate(estimates.times_ns.tolist())
    ]
    group = simulation.group
    return {
        "version": {
            "project_id": spec.project_id,
            "model_id": spec.model_id,
            "number": spec.number,
            "status": spec.status,
        },
        "group": {"project_name": group.project_name, "device_id": group.device_id, "batch_id": group.batch_id},
        "configuration": {
            "deployment": simulation.deployment_name,
            "input_mapping": {f: estimator.variable(f) for f in spec.feature_names},
            "max_input_age_seconds": estimator.config.max_input_age_seconds,
            "bias_update": estimator.config.bias.as_dict() if estimator.config.bias is not None else None,
        },
        "features": list(spec.feature_names),
        "outputs": outputs,
        "snapshots": len(estimates.snapshots),
        "rows": estimates.rows,
        "skipped": dict(estimates.skipped),
        "truncated": simulation.truncated,
        "bias_report": {
            name: {"used": r.used, "rejected": dict(r.rejected), "final": r.final}
            for name, r in estimates.bias_report.items()
        },
        "estimates": rows,
    }


class SimulationRunApi(APIView):
    """Score a version (by number or alias) over a stored batch as its deployment scores it; nothing is stored.

    The one scoring path (``apps.orchestrator.simulation.simulation_run``), the same the simulation page and
    its Excel export call: as-of snapshots, derived inputs, validity, and the bias update unless
    ``bias_update`` is false. Modelers and administrators (``manage_models``).
    """

    permission_classes = [CanSimulate]

    class InputSerializer(serializers.Serializer):
        project_id = serializers.CharField(max_length=64)
        model_id = serializers.CharField(max_length=255)
        version = serializers.IntegerField(min_value=1, required=False, help_text="version number (or alias)")
        alias = serializers.SlugField(max_length=64, required=False, help_text="alias name (or version)")
        device_id = serializers.CharField(max_length=128)
        batch_id = serializers.CharField(max_length=128)
        bias_update = serializers.BooleanField(required=False, default=True)

        def validate(self, data: dict[str, Any]) -> dict[str, Any]:
            if ("version" in data) == ("alias" in data):
                raise serializers.ValidationError({"version": "give either a version number or an alias"})
            return data

    @extend_schema(
        request=InputSerializer, responses={200: SimulationOutput}, operation_id="orchestrator_simulation_run"
    )
    def post(self, request: Request) -> Response:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        spec = simulation_version_get(
            project_id=data["project_id"],
            model_id=data["model_id"],
            number=data.get("version"),
            alias=data.get("alias"),
        )
        group = GroupKey(spec.project_name, data["device_id"], data["batch_id"])
        simulation = simulation_run(spec=spec, group=group, bias=data["bias_update"])
        return Response(SimulationOutput(simulation_body(simulation)).data)


class EstimateExplanationApi(APIView):
    """Why a stored estimate is what it is: each input's contribution (adding up to the raw estimate minus the
    base value), the inputs outside the training envelope, and the bias update in force
    (``explanations.estimate_explanation``)."""

    permission_classes = [CanView]

    class InputSerializer(serializers.Serializer):
        project = serializers.CharField(help_text="Project name (the tsdb project tag).")
        device = serializers.CharField()
        batch = serializers.CharField()
        model_id = serializers.CharField(help_text="The predictions series' model_id tag.")
        version = serializers.CharField(help_text="The predictions series' version tag.")
        time = serializers.DateTimeField(help_text="The estimate's time (UTC; the second it falls in).")
        output = serializers.CharField(required=False, help_text="Output name (default: the version's first).")

    class OutputSerializer(EstimateExplanationSerializer):
        class Meta:
            ref_name = "StoredEstimateExplanationOutput"

        version = serializers.CharField()
        time = serializers.DateTimeField()
        estimate = serializers.FloatField(allow_null=True, help_text="The stored estimate (raw + bias update).")
        bias_update = serializers.FloatField(allow_null=True)

    @extend_schema(
        parameters=[InputSerializer], responses=OutputSerializer, operation_id="orchestrator_estimate_explanation"
    )
    def get(self, request: Request) -> Response:
        params = self.InputSerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        data = params.validated_data
        answer = estimate_explanation(
            group=GroupKey(data["project"], data["device"], data["batch"]),
            model_tag=data["model_id"],
            version_tag=data["version"],
            time=data["time"],
            output=data.get("output") or None,
        )
        return Response(self.OutputSerializer(answer).data)
