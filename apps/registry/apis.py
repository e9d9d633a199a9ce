"""REST API of the registry under /api/v1/registry/ (one APIView per operation).

Reads need ``view_process``, predictions need ``predict`` (operators and service accounts have both),
anything that writes needs ``manage_models`` (modelers and admins).
"""

from __future__ import annotations

import json
import time
from typing import Any

import numpy as np
from django.conf import settings
from django.db import connection
from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.common.errors import Conflict, NotFound, ServiceUnavailable, ValidationFailed
from apps.common.permissions import HasCapability, capability

from . import artifacts as store
from . import selectors, services, serving
from .artifacts import ArtifactIntegrityError
from .models import ModelVersion, SoftSensor, VersionStatus
from .project_info import ProjectInfoError, parse_project_info, parse_project_info_yaml
from .runtimes import ArtifactLoadError, RuntimeUnavailable

CanView = capability("view_process")


class CanPredict(HasCapability):
    """``predict`` capability, checked in one parameterised query (the prediction hot path).

    Same rule as Django's ModelBackend (active user; superuser; or the permission held directly or
    through a group), without loading every permission of the user. With other authentication
    backends configured it falls back to ``user.has_perm``.
    """

    required = ("predict",)
    SQL = """
        SELECT 1 FROM auth_permission p
        JOIN django_content_type ct ON ct.id = p.content_type_id
        WHERE ct.app_label = 'accounts' AND p.codename = %s AND (
            p.id IN (SELECT permission_id FROM auth_user_user_permissions WHERE user_id = %s)
            OR p.id IN (SELECT gp.permission_id FROM auth_group_permissions gp
                        JOIN auth_user_groups ug ON ug.group_id = gp.group_id WHERE ug.user_id = %s))
        LIMIT 1
    """

    def has_permission(self, request: Request, view: APIView) -> bool:
        user = request.user
        if not (user and user.is_authenticated and user.is_active):
            return False
        if user.is_superuser:
            return True
        if list(settings.AUTHENTICATION_BACKENDS) != ["django.contrib.auth.backends.ModelBackend"]:
            return super().has_permission(request, view)
        with connection.cursor() as cursor:
            cursor.execute(self.SQL, ["predict", user.pk, user.pk])
            return cursor.fetchone() is not None


CanManage = capability("manage_models")


# ----------------------------------------------------------------------------------------- serializers


class ProjectOutput(serializers.Serializer):
    project_id = serializers.CharField()
    name = serializers.CharField()
    description = serializers.CharField()
    coordinator = serializers.CharField()
    contributors = serializers.JSONField()
    start_date = serializers.DateField(allow_null=True)
    end_date = serializers.DateField(allow_null=True)
    data_sources = serializers.JSONField()
    references = serializers.JSONField()


class VariableOutput(serializers.Serializer):
    raw_name = serializers.CharField()
    canonical_name = serializers.CharField()
    column_type = serializers.CharField()
    units = serializers.CharField()
    description = serializers.CharField()
    display_decimals = serializers.IntegerField()


class ArtifactOutput(serializers.Serializer):
    role = serializers.CharField()
    name = serializers.CharField(source="original_name")
    sha256 = serializers.CharField()
    size = serializers.IntegerField()
    trusted_by = serializers.CharField(source="trusted_by.username", default=None)
    trusted_at = serializers.DateTimeField(allow_null=True)


class VersionOutput(serializers.Serializer):
    number = serializers.IntegerField()
    version_label = serializers.CharField()
    flavor = serializers.CharField()
    status = serializers.CharField()
    status_description = serializers.CharField()
    created_by = serializers.CharField(source="created_by.username", default=None)
    created_at = serializers.DateTimeField()
    status_changed_at = serializers.DateTimeField(allow_null=True)
    parent = serializers.IntegerField(source="parent.number", default=None)
    training_run_id = serializers.CharField(allow_null=True)
    training_data = serializers.JSONField()
    source = serializers.CharField()
    first_predicted_at = serializers.DateTimeField(allow_null=True)
    archived_at = serializers.DateTimeField(allow_null=True)
    artifacts = ArtifactOutput(many=True)
    aliases = serializers.SerializerMethodField()

    def get_aliases(self, version: ModelVersion) -> list[str]:
        return sorted(alias.name for alias in version.aliases.all())


class VersionDetailOutput(VersionOutput):
    descriptor = serializers.JSONField()


class AliasOutput(serializers.Serializer):
    name = serializers.CharField()
    version = serializers.IntegerField(source="version.number")
    updated_at = serializers.DateTimeField()


class AliasMoveOutput(serializers.Serializer):
    alias = serializers.CharField(source="alias_name")
    from_version = serializers.IntegerField(source="from_version.number", default=None)
    to_version = serializers.IntegerField(source="to_version.number", default=None)
    moved_by = serializers.CharField(source="moved_by.username", default=None)
    moved_at = serializers.DateTimeField()
    reason = serializers.CharField()


class SoftSensorOutput(serializers.Serializer):
    project_id = serializers.CharField(source="project.project_id")
    model_id = serializers.CharField()
    name = serializers.CharField()
    language = serializers.CharField()
    predicted_variables = serializers.JSONField()
    archived_at = serializers.DateTimeField(allow_null=True)
    aliases = AliasOutput(many=True)
    latest_version = serializers.SerializerMethodField()

    def get_latest_version(self, soft_sensor: SoftSensor) -> int | None:
        versions = list(soft_sensor.versions.all())
        return versions[0].number if versions else None


def _soft_sensor(project_id: str, model_id: str) -> SoftSensor:
    return selectors.soft_sensor_get(project_id=project_id, model_id=model_id)


def _version(project_id: str, model_id: str, number: int) -> ModelVersion:
    soft_sensor = _soft_sensor(project_id, model_id)
    version = selectors.version_get(soft_sensor=soft_sensor, number=number)
    version.soft_sensor = soft_sensor
    return version


# --------------------------------------------------------------------------------------------- projects


class ProjectListApi(APIView):
    permission_classes = [CanView]

    @extend_schema(responses=ProjectOutput(many=True))
    def get(self, request: Request) -> Response:
        return Response(ProjectOutput(selectors.project_list(), many=True).data)


class ProjectDetailApi(APIView):
    permission_classes = [CanView]

    @extend_schema(responses=ProjectOutput)
    def get(self, request: Request, project_id: str) -> Response:
        return Response(ProjectOutput(selectors.project_get(project_id=project_id)).data)


class ProjectCreateApi(APIView):
    """Create or replace a project from a project_info document (JSON body or a ``project_info`` file)."""

    permission_classes = [CanManage]
    parser_classes = [JSONParser, MultiPartParser, FormParser]

    @extend_schema(
        request=inline_serializer("ProjectInfoInput", fields={"project_ID": serializers.CharField()}),
        responses={201: ProjectOutput},
    )
    def post(self, request: Request) -> Response:
        try:
            upload = request.FILES.get("project_info")
            info = parse_project_info_yaml(upload.read()) if upload else parse_project_info(request.data)
        except ProjectInfoError as exc:
            raise ValidationFailed(f"project_info: {exc.errors[0]}", details={"project_info": exc.errors}) from exc
        project = services.project_upsert(info=info)
        return Response(ProjectOutput(project).data, status=status.HTTP_201_CREATED)


class ProjectUpdateApi(APIView):
    permission_classes = [CanManage]

    class InputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "ProjectUpdateInput"

        name = serializers.CharField(max_length=200, required=False)
        description = serializers.CharField(required=False, allow_blank=True)
        coordinator = serializers.CharField(required=False, allow_blank=True)
        contributors = serializers.ListField(child=serializers.CharField(), required=False)
        start_date = serializers.DateField(required=False, allow_null=True)
        end_date = serializers.DateField(required=False, allow_null=True)
        data_sources = serializers.ListField(child=serializers.DictField(), required=False)
        references = serializers.ListField(child=serializers.DictField(), required=False)

    @extend_schema(request=InputSerializer, responses=ProjectOutput)
    def patch(self, request: Request, project_id: str) -> Response:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        project = services.project_update(
            project=selectors.project_get(project_id=project_id), data=serializer.validated_data
        )
        return Response(ProjectOutput(project).data)


class ProjectImportApi(APIView):
    """Import a zipped STAMM project folder (all or nothing); the report lists each model."""

    permission_classes = [CanManage]
    parser_classes = [MultiPartParser]

    @extend_schema(
        request={
            "multipart/form-data": {"type": "object", "properties": {"bundle": {"type": "string", "format": "binary"}}}
        },
        responses={201: OpenApiTypes.OBJECT},
    )
    def post(self, request: Request) -> Response:
        upload = request.FILES.get("bundle")
        if upload is None:
            raise ValidationFailed(
                "bundle: a zip of a STAMM project folder is required.", details={"bundle": "required"}
            )
        report = services.project_zip_import(upload=upload, user=request.user)
        return Response(report.as_dict(), status=status.HTTP_201_CREATED)


class VariableListApi(APIView):
    permission_classes = [CanView]

    @extend_schema(responses=VariableOutput(many=True))
    def get(self, request: Request, project_id: str) -> Response:
        project = selectors.project_get(project_id=project_id)
        return Response(VariableOutput(selectors.variable_list(project=project), many=True).data)


class VariableReplaceApi(APIView):
    """Replace the variable dictionary with a list of project_info ``variables`` entries."""

    permission_classes = [CanManage]

    @extend_schema(
        request=inline_serializer(
            "VariablesInput", fields={"variables": serializers.ListField(child=serializers.DictField())}
        ),
        responses=VariableOutput(many=True),
    )
    def put(self, request: Request, project_id: str) -> Response:
        project = selectors.project_get(project_id=project_id)
        variables = request.data.get("variables") if isinstance(request.data, dict) else None
        if not isinstance(variables, list):
            raise ValidationFailed("variables: a list is required.", details={"variables": "required"})
        try:
            info = parse_project_info(
                {"project_ID": project.project_id, "project_name": project.name, "variables": variables}
            )
        except ProjectInfoError as exc:
            raise ValidationFailed(exc.errors[0], details={"variables": exc.errors}) from exc
        services.variables_replace(project=project, variables=info.variables)
        return Response(VariableOutput(selectors.variable_list(project=project), many=True).data)


# ---------------------------------------------------------------------------------------- soft sensors


class SoftSensorListApi(APIView):
    permission_classes = [CanView]

    @extend_schema(responses=SoftSensorOutput(many=True))
    def get(self, request: Request, project_id: str) -> Response:
        project = selectors.project_get(project_id=project_id)
        return Response(SoftSensorOutput(selectors.soft_sensor_list(project=project), many=True).data)


class SoftSensorDetailApi(APIView):
    permission_classes = [CanView]

    @extend_schema(
        responses=inline_serializer(
            "SoftSensorDetail", fields={"soft_sensor": SoftSensorOutput(), "versions": VersionOutput(many=True)}
        )
    )
    def get(self, request: Request, project_id: str, model_id: str) -> Response:
        soft_sensor = _soft_sensor(project_id, model_id)
        return Response(
            {
                "soft_sensor": SoftSensorOutput(soft_sensor).data,
                "versions": VersionOutput(soft_sensor.versions.all(), many=True).data,
            }
        )


class SoftSensorDeleteApi(APIView):
    permission_classes = [CanManage]

    @extend_schema(responses=inline_serializer("DeleteOutcome", fields={"outcome": serializers.CharField()}))
    def delete(self, request: Request, project_id: str, model_id: str) -> Response:
        outcome = services.soft_sensor_delete(soft_sensor=_soft_sensor(project_id, model_id), user=request.user)
        return Response({"outcome": outcome})


# -------------------------------------------------------------------------------------------- versions


class ModelVersionUploadApi(APIView):
    """Register a version: ``descriptor`` (YAML file or text) + ``model_file`` (+ scalers), or a ``bundle`` zip."""

    permission_classes = [CanManage]
    parser_classes = [MultiPartParser, FormParser]

    class InputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "ModelVersionUploadInput"

        descriptor = serializers.CharField(required=False, help_text="Descriptor YAML text (or upload it as a file).")
        status = serializers.ChoiceField(choices=["online", "offline"], required=False)
        alias = serializers.SlugField(required=False)
        reason = serializers.CharField(required=False, allow_blank=True)
        parent_version = serializers.IntegerField(required=False, min_value=1)
        training_run_id = serializers.CharField(required=False, max_length=64)
        training_data = serializers.JSONField(
            required=False,
            help_text='JSON, e.g. {"batches": [92], "envelope": {"temperature": {"min": 296, "max": 303}}}',
        )

    @extend_schema(
        request={
            "multipart/form-data": {
                "type": "object",
                "properties": {
                    "descriptor": {"type": "string", "format": "binary"},
                    "model_file": {"type": "string", "format": "binary"},
                    "input_scaler": {"type": "string", "format": "binary"},
                    "output_scaler": {"type": "string", "format": "binary"},
                    "bundle": {"type": "string", "format": "binary"},
                    "status": {"type": "string"},
                    "alias": {"type": "string"},
                    "reason": {"type": "string"},
                    "parent_version": {"type": "integer"},
                    "training_data": {"type": "string"},
                },
            }
        },
        responses={201: VersionDetailOutput},
    )
    def post(self, request: Request, project_id: str) -> Response:
        project = selectors.project_get(project_id=project_id)
        if "bundle" in request.FILES:
            report = services.project_zip_import(upload=request.FILES["bundle"], user=request.user, project=project)
            return Response(report.as_dict(), status=status.HTTP_201_CREATED)
        data = {
            key: request.data.get(key)
            for key in self.InputSerializer().fields
            if request.data.get(key) not in (None, "")
        }
        if "descriptor" in request.FILES:
            data["descriptor"] = request.FILES["descriptor"].read().decode("utf-8", errors="replace")
        serializer = self.InputSerializer(data=data)
        serializer.is_valid(raise_exception=True)
        values = serializer.validated_data
        if not values.get("descriptor"):
            raise ValidationFailed(
                "descriptor: the descriptor YAML is required (or upload a bundle zip).",
                details={"descriptor": "required"},
            )
        training_data = values.get("training_data") or {}
        if isinstance(training_data, str):
            try:
                training_data = json.loads(training_data)
            except ValueError as exc:
                raise ValidationFailed(
                    "training_data: must be a JSON object", details={"training_data": "invalid JSON"}
                ) from exc
        if not isinstance(training_data, dict):
            raise ValidationFailed(
                "training_data: must be a JSON object", details={"training_data": "must be an object"}
            )
        files = {
            role: services.ArtifactInput(request.FILES[field], request.FILES[field].name)
            for role, field in (
                ("model", "model_file"),
                ("input_scaler", "input_scaler"),
                ("output_scaler", "output_scaler"),
            )
            if field in request.FILES
        }
        descriptor = services.parse_descriptor_or_400(values["descriptor"])
        parent = None
        if values.get("parent_version"):
            parent = _version(project_id, descriptor.model_id, values["parent_version"])
        version = services.model_version_register(
            project=project,
            descriptor=descriptor,
            files=files,
            user=request.user,
            source="upload",
            parent=parent,
            training_run_id=values.get("training_run_id"),
            training_data=training_data,
            status=values.get("status"),
            alias=values.get("alias"),
            alias_reason=values.get("reason", ""),
        )
        version = _version(project_id, descriptor.model_id, version.number)
        return Response(VersionDetailOutput(version).data, status=status.HTTP_201_CREATED)


class ModelVersionDetailApi(APIView):
    permission_classes = [CanView]

    @extend_schema(responses=VersionDetailOutput)
    def get(self, request: Request, project_id: str, model_id: str, number: int) -> Response:
        return Response(VersionDetailOutput(_version(project_id, model_id, number)).data)


class ModelVersionStatusApi(APIView):
    """Put a version online (refused with 409 when it cannot load) or offline."""

    permission_classes = [CanManage]

    class InputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "ModelVersionStatusInput"

        status = serializers.ChoiceField(choices=["online", "offline"])
        description = serializers.CharField(required=False, allow_blank=True, default="")

    @extend_schema(request=InputSerializer, responses=VersionDetailOutput)
    def post(self, request: Request, project_id: str, model_id: str, number: int) -> Response:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        version = _version(project_id, model_id, number)
        services.model_version_set_status(version=version, user=request.user, **serializer.validated_data)
        return Response(VersionDetailOutput(_version(project_id, model_id, number)).data)


class ModelVersionDescriptorUpdateApi(APIView):
    """Deep-merge a JSON object into the version's descriptor (upstream ``PUT update``), with history."""

    permission_classes = [CanManage]

    @extend_schema(request=inline_serializer("DescriptorPatch", fields={}), responses=VersionDetailOutput)
    def put(self, request: Request, project_id: str, model_id: str, number: int) -> Response:
        version = _version(project_id, model_id, number)
        services.model_version_update_descriptor(version=version, patch=request.data, user=request.user, source="api")
        return Response(VersionDetailOutput(_version(project_id, model_id, number)).data)


class ModelVersionDeleteApi(APIView):
    """Erase a never-used version, or archive one that was aliased or served predictions."""

    permission_classes = [CanManage]

    @extend_schema(responses=inline_serializer("VersionDeleteOutcome", fields={"outcome": serializers.CharField()}))
    def delete(self, request: Request, project_id: str, model_id: str, number: int) -> Response:
        outcome = services.model_version_delete(version=_version(project_id, model_id, number), user=request.user)
        return Response({"outcome": outcome})


class ModelVersionDownloadApi(APIView):
    """Download the descriptor YAML, an artefact (``model``, ``input_scaler``, ``output_scaler``) or a bundle zip."""

    permission_classes = [CanView]
    KINDS = ("descriptor", "model", "input_scaler", "output_scaler", "bundle")

    @extend_schema(responses={(200, "application/octet-stream"): bytes})
    def get(self, request: Request, project_id: str, model_id: str, number: int, kind: str) -> HttpResponse:
        version = _version(project_id, model_id, number)
        return version_download(version, kind)


def version_download(version: ModelVersion, kind: str) -> HttpResponse:
    """The download response shared by the API and the modeler pages."""
    model_id = version.soft_sensor.model_id
    if kind == "descriptor":
        response = HttpResponse(services.export_descriptor(version), content_type="application/x-yaml; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="{store.sanitize_name(model_id)}.yaml"'
        return response
    if kind == "bundle":
        response = HttpResponse(services.version_bundle_zip(version=version), content_type="application/zip")
        response["Content-Disposition"] = (
            f'attachment; filename="{store.sanitize_name(model_id)}-v{version.number}.zip"'
        )
        return response
    artifact = next((a for a in version.artifacts.all() if a.role == kind), None)
    if artifact is None:
        raise NotFound(f"{version} has no {kind.replace('_', ' ')} file.")
    try:
        data = store.read_verified(artifact.path, artifact.sha256)
    except store.ArtifactIntegrityError as exc:
        raise ValidationFailed(str(exc), code="integrity") from exc
    response = HttpResponse(data, content_type="application/octet-stream")
    response["Content-Disposition"] = f'attachment; filename="{store.sanitize_name(artifact.original_name)}"'
    return response


# --------------------------------------------------------------------------------------------- aliases


class AliasListApi(APIView):
    permission_classes = [CanView]

    @extend_schema(
        responses=inline_serializer(
            "AliasList", fields={"aliases": AliasOutput(many=True), "history": AliasMoveOutput(many=True)}
        )
    )
    def get(self, request: Request, project_id: str, model_id: str) -> Response:
        soft_sensor = _soft_sensor(project_id, model_id)
        return Response(
            {
                "aliases": AliasOutput(soft_sensor.aliases.all(), many=True).data,
                "history": AliasMoveOutput(selectors.alias_history(soft_sensor=soft_sensor), many=True).data,
            }
        )


class AliasMoveApi(APIView):
    """Point an alias (created on first use) at a version; the reason is required and recorded."""

    permission_classes = [CanManage]

    class InputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "AliasMoveInput"

        version = serializers.IntegerField(min_value=1)
        reason = serializers.CharField()

    @extend_schema(request=InputSerializer, responses=AliasOutput)
    def post(self, request: Request, project_id: str, model_id: str, alias: str) -> Response:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        soft_sensor = _soft_sensor(project_id, model_id)
        version = selectors.version_get(soft_sensor=soft_sensor, number=serializer.validated_data["version"])
        moved = services.alias_move(
            soft_sensor=soft_sensor,
            name=alias,
            version=version,
            user=request.user,
            reason=serializer.validated_data["reason"],
        )
        return Response(AliasOutput(moved).data)


class AliasDeleteApi(APIView):
    permission_classes = [CanManage]

    class InputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "AliasDeleteInput"

        reason = serializers.CharField()

    @extend_schema(request=InputSerializer, responses={204: None})
    def post(self, request: Request, project_id: str, model_id: str, alias: str) -> Response:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        services.alias_delete(
            soft_sensor=_soft_sensor(project_id, model_id),
            name=alias,
            user=request.user,
            reason=serializer.validated_data["reason"],
        )
        return Response(status=status.HTTP_204_NO_CONTENT)


# --------------------------------------------------------------------------------------------- predict


def json_numbers(values: np.ndarray) -> list:
    """Predictions as JSON numbers; NaN or infinite values become null."""
    if np.isfinite(values).all():
        return values.tolist()
    return np.where(np.isfinite(values), values, None).tolist()


def serve_prediction(version: ModelVersion, body: Any) -> serving.PredictionResult:
    """Refuse versions that cannot serve, predict, remember the version was used.

    ``version`` comes from ``selectors.version_for_predict`` (its files are looked up by id) or carries
    prefetched ``artifacts``.
    """
    if version.archived_at is not None:
        raise Conflict(f"{version} is archived.", code="archived")
    if version.status != VersionStatus.ONLINE:
        raise Conflict(
            f"{version} is {version.get_status_display()}: {version.status_description}",
            details={"status": version.status},
            code="offline",
        )
    try:
        artifacts = selectors.version_artifacts(version)
        result = serving.predict_body(version, body, artifacts=artifacts)
    except RuntimeUnavailable as exc:
        raise ServiceUnavailable(f"{version} cannot be served: {exc}", code="runtime_unavailable") from exc
    except (ArtifactIntegrityError, ArtifactLoadError) as exc:
        services.model_version_mark_load_error(version=version, problem=str(exc))
        raise Conflict(
            f"{version} cannot be loaded: {exc}", details={"load_error": str(exc)}, code="load_error"
        ) from exc
    services.model_version_mark_predicted(version=version)
    return result


class SoftSensorPredictApi(APIView):
    """Predict with a soft sensor's version, by alias or number, for one row or a batch.

    Body: ``{"inputs": {feature: [values]}}``, ``{"instances": [{...}]}``, ``{"dataframe_split": {...}}``
    or ``{"dataframe_records": [{...}]}``. Inputs are taken by name in the descriptor's order.
    """

    permission_classes = [CanPredict]
    parser_classes = [JSONParser]

    class OutputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "SoftSensorPredictOutput"

        project_id = serializers.CharField()
        soft_sensor = serializers.CharField()
        version = serializers.IntegerField()
        version_label = serializers.CharField()
        alias = serializers.CharField(allow_null=True)
        outputs = serializers.ListField(child=serializers.CharField())
        predictions = serializers.ListField(child=serializers.JSONField())
        validity = serializers.ListField(child=serializers.DictField())
        ignored_inputs = serializers.ListField(child=serializers.CharField())

    @extend_schema(
        request=inline_serializer(
            "PredictInput",
            fields={
                "inputs": serializers.DictField(required=False),
                "instances": serializers.ListField(required=False),
            },
        ),
        responses=OutputSerializer,
        parameters=[OpenApiParameter("alias", str, OpenApiParameter.PATH, required=False)],
    )
    def post(
        self, request: Request, project_id: str, model_id: str, alias: str | None = None, number: int | None = None
    ) -> Response:
        started = time.perf_counter()
        version = selectors.version_for_predict(project_id=project_id, model_id=model_id, number=number, alias=alias)
        result = serve_prediction(version, request.data)
        body = {
            "project_id": project_id,
            "soft_sensor": version.model_id,
            "version": version.number,
            "version_label": version.version_label,
            "alias": alias,
            "outputs": result.outputs,
            "predictions": json_numbers(result.predictions),
            "validity": result.validity,
            "ignored_inputs": result.ignored,
        }
        response = Response(body)
        response["Server-Timing"] = f"app;dur={(time.perf_counter() - started) * 1000:.3f}"
        return response
