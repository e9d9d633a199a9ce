"""REST API of the registry's model versions under /api/v1/registry/: upload (files, STAMM zip, MLflow),
detail, status, pickle approval, descriptor, delete, download. Reads need ``view_process``, writes
``manage_models``."""

from __future__ import annotations

import json

from django.http import HttpResponse
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.common.errors import NotFound, ValidationFailed
from apps.common.parsers import FormParser, MultiPartParser
from apps.common.permissions import capability

from . import artifacts as store
from . import selectors, services
from .api_outputs import (
    VersionDetailOutput,
    version_or_404,
)
from .mlflow_models import MlflowModelError, mlflow_descriptor, read_mlflow_zip
from .models import ModelVersion
from .permissions import CanManage, CanView

# -------------------------------------------------------------------------------------------- versions


class ModelVersionUploadApi(APIView):
    """Register a version: ``descriptor`` (YAML file or text) + ``model_file`` (+ scalers), or a ``bundle`` zip."""

    permission_classes = [CanManage]
    parser_classes = [MultiPartParser, FormParser]

    @property
    def max_upload_bytes(self) -> int:
        return store.max_upload_bytes()

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
        requirements = serializers.CharField(
            required=False, help_text="requirements.txt text (or a file): the version's declared environment"
        )
        convert_to_onnx = serializers.BooleanField(
            required=False, default=False, help_text="serve a scikit-learn model as ONNX (checked against it)"
        )
        model_id = serializers.CharField(required=False, max_length=200, help_text="with mlflow_model: its ID")
        output = serializers.CharField(required=False, max_length=200, help_text="with mlflow_model: output name")

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
                    "requirements": {"type": "string", "format": "binary"},
                    "convert_to_onnx": {"type": "boolean"},
                    "mlflow_model": {"type": "string", "format": "binary"},
                    "model_id": {"type": "string"},
                    "output": {"type": "string"},
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
        for field in ("descriptor", "requirements"):
            if field in request.FILES:
                data[field] = request.FILES[field].read().decode("utf-8", errors="replace")
        serializer = self.InputSerializer(data=data)
        serializer.is_valid(raise_exception=True)
        values = dict(serializer.validated_data)
        files = services.artifact_inputs(request.FILES)
        if "mlflow_model" in request.FILES and not values.get("descriptor"):
            values["descriptor"], values["requirements"], files = _mlflow_upload(request.FILES["mlflow_model"], values)
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
        descriptor = services.parse_descriptor_or_400(values["descriptor"])
        parent = None
        if values.get("parent_version"):
            parent = version_or_404(project_id, descriptor.model_id, values["parent_version"])
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
            requirements=values.get("requirements") or None,
            convert_to_onnx=values.get("convert_to_onnx", False),
        )
        version = version_or_404(project_id, descriptor.model_id, version.number)
        return Response(VersionDetailOutput(version).data, status=status.HTTP_201_CREATED)


def _mlflow_upload(upload, values: dict) -> tuple[str, str, dict]:
    """An MLflow model zip → (descriptor YAML, requirements text, files); 400 naming what is missing."""
    if not values.get("model_id"):
        raise ValidationFailed("model_id: required with mlflow_model.", details={"model_id": "required"})
    data = upload.read()
    try:
        model = read_mlflow_zip(data)
        descriptor = mlflow_descriptor(model, model_id=values["model_id"], output=values.get("output"))
    except MlflowModelError as exc:
        raise ValidationFailed(f"mlflow_model: {exc}", details={"mlflow_model": str(exc)}) from exc
    requirements = values.get("requirements") or model.requirements
    return descriptor, requirements, {"model": services.ArtifactInput(data, f"{values['model_id']}.mlflow")}


class ModelVersionDetailApi(APIView):
    permission_classes = [CanView]

    @extend_schema(responses=VersionDetailOutput)
    def get(self, request: Request, project_id: str, model_id: str, number: int) -> Response:
        return Response(VersionDetailOutput(version_or_404(project_id, model_id, number)).data)


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
        version = version_or_404(project_id, model_id, number)
        services.model_version_set_status(version=version, user=request.user, **serializer.validated_data)
        return Response(VersionDetailOutput(version_or_404(project_id, model_id, number)).data)


class ModelVersionApprovePickleApi(APIView):
    """An administrator approves the version's pickle files (naming the model file's sha256), then it is loaded
    and put online: 409 when pickle loading is disabled on this server or the model does not load."""

    permission_classes = [capability("administer")]

    class InputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "ModelVersionApprovePickleInput"

        sha256 = serializers.RegexField(
            r"^[0-9a-fA-F]{64}$", help_text="The model file's sha256: the bytes you reviewed and approve."
        )
        online = serializers.BooleanField(default=True, help_text="Load it and put it online now (the default).")

    @extend_schema(request=InputSerializer, responses=VersionDetailOutput)
    def post(self, request: Request, project_id: str, model_id: str, number: int) -> Response:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        version = version_or_404(project_id, model_id, number)
        services.model_version_approve_pickle(version=version, user=request.user, **serializer.validated_data)
        return Response(VersionDetailOutput(version_or_404(project_id, model_id, number)).data)


class ModelVersionDescriptorUpdateApi(APIView):
    """Deep-merge a JSON object into the version's descriptor (upstream ``PUT update``), with history."""

    permission_classes = [CanManage]

    @extend_schema(request=inline_serializer("DescriptorPatch", fields={}), responses=VersionDetailOutput)
    def put(self, request: Request, project_id: str, model_id: str, number: int) -> Response:
        version = version_or_404(project_id, model_id, number)
        services.model_version_update_descriptor(version=version, patch=request.data, user=request.user, source="api")
        return Response(VersionDetailOutput(version_or_404(project_id, model_id, number)).data)


class ModelVersionDeleteApi(APIView):
    """Erase a never-used version, or archive one that was aliased or served predictions."""

    permission_classes = [CanManage]

    @extend_schema(responses=inline_serializer("VersionDeleteOutcome", fields={"outcome": serializers.CharField()}))
    def delete(self, request: Request, project_id: str, model_id: str, number: int) -> Response:
        outcome = services.model_version_delete(version=version_or_404(project_id, model_id, number), user=request.user)
        return Response({"outcome": outcome})


class ModelVersionDownloadApi(APIView):
    """Download the descriptor YAML, an artefact (``model``, ``input_scaler``, ``output_scaler``) or a bundle zip."""

    permission_classes = [CanView]
    KINDS = ("descriptor", "model", "input_scaler", "output_scaler", "bundle")

    @extend_schema(responses={(200, "application/octet-stream"): bytes})
    def get(self, request: Request, project_id: str, model_id: str, number: int, kind: str) -> HttpResponse:
        version = version_or_404(project_id, model_id, number)
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
