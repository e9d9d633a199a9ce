"""The upstream STAMM registry endpoints (contracts §3), same request and response shapes.

Mounted under ``/stamm/`` so existing STAMM clients (the Airflow DAG, the dashboard) only change their
base URL. Unlike upstream, every endpoint needs authentication (a token), and prediction takes inputs
by name in the descriptor's ``features`` order whatever order the request keys come in.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.common.errors import NotFound, ValidationFailed
from apps.common.parsers import JSONParser

from . import selectors, services
from .inference_apis import json_numbers
from .models import ModelVersion
from .permissions import CanManage, CanPredict, CanView
from .project_info import format_date


def _current(project_id: str, model_id: str) -> ModelVersion:
    soft_sensor = selectors.soft_sensor_get(project_id=project_id, model_id=model_id)
    version = selectors.current_version(soft_sensor)
    if version is None or version.archived_at is not None:
        raise NotFound(f"Model {model_id} has no live version in {project_id}.", details={"model_id": model_id})
    version.soft_sensor = soft_sensor
    return version


@extend_schema(tags=["stamm"])
class StammProjectListApi(APIView):
    permission_classes = [CanView]

    @extend_schema(responses=OpenApiTypes.ANY)
    def get(self, request: Request) -> Response:
        return Response(
            [
                {
                    "project_ID": p.project_id,
                    "name": p.name,
                    "description": p.description,
                    "coordinator": p.coordinator,
                    "start_date": format_date(p.start_date),
                    "end_date": format_date(p.end_date),
                }
                for p in selectors.project_list()
            ]
        )


@extend_schema(tags=["stamm"])
class StammProjectInfoApi(APIView):
    permission_classes = [CanView]
    section: str | None = None

    @extend_schema(responses=OpenApiTypes.ANY)
    def get(self, request: Request, project_id: str) -> Response:
        document = selectors.project_info_json(project=selectors.project_get(project_id=project_id))
        return Response(document if self.section is None else document.get(self.section, []))


@extend_schema(tags=["stamm"])
class StammModelListApi(APIView):
    """All models: ``[{model_ID, model_name, metadata}]`` with ``metadata`` = model_identification."""

    permission_classes = [CanView]

    @extend_schema(responses=OpenApiTypes.ANY)
    def get(self, request: Request, project_id: str) -> Response:
        project = selectors.project_get(project_id=project_id)
        rows: list[dict[str, Any]] = []
        for soft_sensor in selectors.soft_sensor_list(project=project):
            spec = selectors.spec_current(soft_sensor=soft_sensor)
            if spec is None:
                continue
            rows.append(
                {
                    "model_ID": soft_sensor.model_id,
                    "model_name": spec.model_name or spec.name,
                    "metadata": dict(spec.identification_block),
                }
            )
        return Response(rows)


@extend_schema(tags=["stamm"])
class StammModelsFullApi(APIView):
    """Full descriptors of the online models: ``[{ml_model_configuration: ...}]``."""

    permission_classes = [CanView]

    @extend_schema(responses=OpenApiTypes.ANY)
    def get(self, request: Request, project_id: str) -> Response:
        project = selectors.project_get(project_id=project_id)
        return Response([{"ml_model_configuration": v.descriptor} for v in selectors.online_versions(project=project)])


@extend_schema(tags=["stamm"])
class StammModelMetadataApi(APIView):
    permission_classes = [CanView]

    @extend_schema(responses=OpenApiTypes.ANY)
    def get(self, request: Request, project_id: str, model_id: str) -> Response:
        return Response(_current(project_id, model_id).descriptor)


@extend_schema(tags=["stamm"])
class StammModelUpdateApi(APIView):
    """Deep-merge the JSON body into the descriptor (history kept in the database): ``{"status": "ok"}``."""

    permission_classes = [CanManage]
    parser_classes = [JSONParser]

    @extend_schema(request=OpenApiTypes.OBJECT, responses=OpenApiTypes.OBJECT)
    def put(self, request: Request, project_id: str, model_id: str) -> Response:
        version = _current(project_id, model_id)
        services.model_version_update_descriptor(
            version=version, patch=request.data, user=request.user, source="stamm-update"
        )
        return Response({"status": "ok"})


@extend_schema(tags=["stamm"])
class StammModelPredictApi(APIView):
    """``{"req": {"input_data": {feature: number}}}`` → ``{"output_model": [{"metadata", "prediction"}]}``."""

    permission_classes = [CanPredict]
    parser_classes = [JSONParser]

    @extend_schema(request=OpenApiTypes.OBJECT, responses=OpenApiTypes.OBJECT)
    def post(self, request: Request, project_id: str, model_id: str) -> Response:
        body = request.data
        request_block = body.get("req") if isinstance(body, dict) else None
        input_data = request_block.get("input_data") if isinstance(request_block, dict) else None
        if not isinstance(input_data, dict):
            raise ValidationFailed(
                'req.input_data: required, as {"req": {"input_data": {"<feature>": <number>, ...}}}',
                details={"req.input_data": "required"},
            )
        soft_sensor = selectors.soft_sensor_get(project_id=project_id, model_id=model_id)
        spec = selectors.spec_current(soft_sensor=soft_sensor)
        if spec is None or spec.archived:
            raise NotFound(f"Model {model_id} has no live version in {project_id}.", details={"model_id": model_id})
        result = services.version_predict_columns(spec=spec, columns=input_data, where="req.input_data")
        return Response(
            {"output_model": [{"metadata": dict(spec.outputs_block), "prediction": json_numbers(result.predictions)}]}
        )
