"""REST API of the registry under /api/v1/registry/ (one APIView per operation): projects,
variables, soft sensors and aliases; versions are ``version_apis.py``.

Reads need ``view_process``, anything that writes needs ``manage_models`` (modelers and admins). The
prediction endpoints (REST, Open Inference Protocol V2, MLflow ``/invocations``) are ``inference_apis.py``.
"""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.audit.serializers import SignatureInputSerializer, signature_input
from apps.common.errors import ValidationFailed
from apps.common.parsers import FormParser, JSONParser, MultiPartParser

from . import artifacts as store
from . import selectors, services
from .api_outputs import (
    AliasMoveOutput,
    AliasOutput,
    ProjectOutput,
    SoftSensorOutput,
    VariableOutput,
    VersionOutput,
    soft_sensor_or_404,
)
from .permissions import CanManage, CanView
from .project_info import ProjectInfoError, parse_project_info, parse_project_info_yaml

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

    @property
    def max_upload_bytes(self) -> int:
        return store.max_upload_bytes()

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
        soft_sensor = soft_sensor_or_404(project_id, model_id)
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
        outcome = services.soft_sensor_delete(soft_sensor=soft_sensor_or_404(project_id, model_id), user=request.user)
        return Response({"outcome": outcome})


# --------------------------------------------------------------------------------------------- aliases


class AliasListApi(APIView):
    permission_classes = [CanView]

    @extend_schema(
        responses=inline_serializer(
            "AliasList", fields={"aliases": AliasOutput(many=True), "history": AliasMoveOutput(many=True)}
        )
    )
    def get(self, request: Request, project_id: str, model_id: str) -> Response:
        soft_sensor = soft_sensor_or_404(project_id, model_id)
        return Response(
            {
                "aliases": AliasOutput(soft_sensor.aliases.all(), many=True).data,
                "history": AliasMoveOutput(selectors.alias_history(soft_sensor=soft_sensor), many=True).data,
            }
        )


class AliasMoveApi(APIView):
    """Point an alias (created on first use) at a version; the reason is required and recorded.

    ``production`` (and any alias the project's signing policy names) also needs ``signature``: the caller's
    password, the meaning ``approved``, and the version's ``sha256`` (from the version's detail). A refused
    signature is a 403 with code ``signature_refused``; the refused attempt is recorded and nothing moves.
    """

    permission_classes = [CanManage]

    class InputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "AliasMoveInput"

        version = serializers.IntegerField(min_value=1)
        reason = serializers.CharField()
        signature = SignatureInputSerializer(required=False)

    @extend_schema(request=InputSerializer, responses=AliasOutput)
    def post(self, request: Request, project_id: str, model_id: str, alias: str) -> Response:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        soft_sensor = soft_sensor_or_404(project_id, model_id)
        version = selectors.version_get(soft_sensor=soft_sensor, number=serializer.validated_data["version"])
        moved = services.alias_move(
            soft_sensor=soft_sensor,
            name=alias,
            version=version,
            user=request.user,
            reason=serializer.validated_data["reason"],
            signature=signature_input(serializer.validated_data.get("signature")),
        )
        return Response(AliasOutput(moved).data)


class AliasDeleteApi(APIView):
    """Remove an alias (recorded); a signed alias needs ``signature`` as for a move."""

    permission_classes = [CanManage]

    class InputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "AliasDeleteInput"

        reason = serializers.CharField()
        signature = SignatureInputSerializer(required=False)

    @extend_schema(request=InputSerializer, responses={204: None})
    def post(self, request: Request, project_id: str, model_id: str, alias: str) -> Response:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        services.alias_delete(
            soft_sensor=soft_sensor_or_404(project_id, model_id),
            name=alias,
            user=request.user,
            reason=serializer.validated_data["reason"],
            signature=signature_input(serializer.validated_data.get("signature")),
        )
        return Response(status=status.HTTP_204_NO_CONTENT)
