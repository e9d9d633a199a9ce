"""Inference endpoints: the registry's REST predict, the Open Inference Protocol V2 and MLflow's ``/invocations``.

Every one of them needs the ``predict`` capability and reaches the model through the one prediction service
(``services.version_predict``), so validity verdicts, the refusal of offline versions (409 with the reason) and
the isolated runtime workers are the same whichever protocol a client speaks.

- REST: ``POST /api/v1/registry/projects/{pid}/soft-sensors/{mid}/(aliases/{alias}|versions/{n})/predict/``.
- V2 (KServe, MLServer, Triton clients): ``/v2``, ``/v2/health/{live,ready}``, ``/v2/models/{name}[/versions/{v}]``
  (metadata), ``…/ready``, ``…/infer``. ``name`` is ``{project_id}:{model_id}``; ``v`` a version number or an
  alias; without a version, "the model" (``production``, else the newest live version). Inputs: one tensor per
  feature (named after it, shape ``[n]`` or ``[n, 1]``), or one ``[n, k]`` tensor in the descriptor's feature
  order; JSON data or the binary tensor extension. Errors are V2's ``{"error": "..."}`` with the HTTP status.
- MLflow: ``POST /mlflow/{pid}/{mid}[/versions/{v}]/invocations`` with MLflow's bodies (``dataframe_split``,
  ``dataframe_records``, ``instances``, ``inputs``) → ``{"predictions": [...]}``; ``GET …/ping``.
"""

from __future__ import annotations

import time

import numpy as np
from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.views import APIView

from apps.common.authentication import TokenBasicAuthentication
from apps.common.errors import Conflict, NotFound, ValidationFailed
from apps.common.parsers import JSONParser

from . import selectors, services, v2_protocol
from .permissions import CanPredict
from .serving import OK, max_predict_rows


def json_numbers(values: np.ndarray) -> list:
    """Predictions as JSON numbers; NaN or infinite values become null."""
    if np.isfinite(values).all():
        return values.tolist()
    return np.where(np.isfinite(values), values, None).tolist()


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
        spec = selectors.spec_get(project_id=project_id, model_id=model_id, number=number, alias=alias)
        result = services.version_predict_body(spec=spec, body=request.data)
        body = {
            "project_id": project_id,
            "soft_sensor": spec.model_id,
            "version": spec.number,
            "version_label": spec.label,
            "alias": alias,
            "outputs": result.outputs,
            "predictions": json_numbers(result.predictions),
            "validity": result.validity,
            "ignored_inputs": result.ignored,
        }
        response = Response(body)
        response["Server-Timing"] = f"app;dur={(time.perf_counter() - started) * 1000:.3f}"
        return response


# ------------------------------------------------------------------------------- Open Inference Protocol V2


def v2_model(name: str, version: str | None = None):
    """The spec a V2 model name (``{project_id}:{model_id}``) and version (number or alias) designate."""
    project_id, separator, model_id = name.partition(":")
    if not separator or not model_id:
        raise NotFound(f"model {name!r}: V2 model names are {{project_id}}:{{model_id}}, e.g. P0001:0001_[python]_RF")
    if version:
        if version.isdigit():
            return selectors.spec_get(project_id=project_id, model_id=model_id, number=int(version))
        return selectors.spec_get(project_id=project_id, model_id=model_id, alias=version)
    spec = selectors.spec_current(soft_sensor=selectors.soft_sensor_get(project_id=project_id, model_id=model_id))
    if spec is None:
        raise NotFound(f"model {name} has no version")
    return spec


class V2Api(APIView):
    """V2 endpoints answer errors in the protocol's own shape: ``{"error": "<message>"}`` with the status."""

    permission_classes = [CanPredict]
    parser_classes: list = []

    def handle_exception(self, exc: Exception) -> Response:
        response = super().handle_exception(exc)
        error = response.data.get("error") if isinstance(response.data, dict) else None
        message = error.get("message") if isinstance(error, dict) else str(response.data)
        response.data = {"error": message}
        return response


@extend_schema(tags=["v2"])
class V2ServerMetadataApi(V2Api):
    @extend_schema(responses=OpenApiTypes.OBJECT)
    def get(self, request: Request) -> Response:
        return Response({"name": "stamm", "version": "2", "extensions": ["binary_tensor_data"]})


@extend_schema(tags=["v2"])
class V2HealthApi(V2Api):
    """``/v2/health/live`` and ``/v2/health/ready``: the server answers (models have their own ``ready``)."""

    @extend_schema(responses=OpenApiTypes.OBJECT)
    def get(self, request: Request) -> Response:
        return Response({"live": True, "ready": True})


@extend_schema(tags=["v2"])
class V2ModelMetadataApi(V2Api):
    @extend_schema(responses=OpenApiTypes.OBJECT)
    def get(self, request: Request, name: str, version: str | None = None) -> Response:
        spec = v2_model(name, version)
        versions = [
            str(s.number)
            for s in selectors.specs_for_project(project_id=spec.project_id)
            if s.model_id == spec.model_id
        ]
        return Response(
            v2_protocol.model_metadata(
                name=name,
                versions=versions,
                platform=f"stamm-{spec.flavor}",
                features=spec.feature_names,
                outputs=spec.output_names,
            )
        )


@extend_schema(tags=["v2"])
class V2ModelReadyApi(V2Api):
    """200 when the version would serve now (online, its environment built), else 400 with the reason."""

    @extend_schema(responses=OpenApiTypes.OBJECT)
    def get(self, request: Request, name: str, version: str | None = None) -> Response:
        spec = v2_model(name, version)
        services.version_servable(spec=spec)
        if spec.environment is not None and not spec.environment.ready:
            raise Conflict(f"{spec.title}: its environment is {spec.environment.state}")
        return Response({"name": name, "ready": True})


@extend_schema(tags=["v2"])
class V2InferApi(V2Api):
    @extend_schema(request=OpenApiTypes.OBJECT, responses=OpenApiTypes.OBJECT)
    def post(self, request: Request, name: str, version: str | None = None) -> HttpResponse:
        started = time.perf_counter()
        spec = v2_model(name, version)
        services.version_servable(spec=spec)
        header = request.headers.get(v2_protocol.HEADER_LENGTH)
        try:
            length = int(header) if header is not None else None
            parsed = v2_protocol.parse_infer(request.body, length, spec.feature_names, max_predict_rows())
        except ValueError as exc:
            raise ValidationFailed(str(exc)) from exc
        result = services.version_predict(spec=spec, X=parsed.X, ignored=parsed.ignored)
        flagged = sum(1 for verdict in result.validity if verdict is not OK)
        body, head = v2_protocol.infer_response(
            model_name=name,
            model_version=str(spec.number),
            request_id=parsed.request_id,
            outputs=result.outputs,
            predictions=result.predictions,
            binary=parsed.binary_outputs,
            parameters={"out_of_range_rows": flagged, "ignored_inputs": ",".join(result.ignored)},
        )
        response = HttpResponse(body, content_type="application/octet-stream" if head else "application/json")
        if head is not None:
            response[v2_protocol.HEADER_LENGTH] = str(head)
        response["Server-Timing"] = f"app;dur={(time.perf_counter() - started) * 1000:.3f}"
        return response


# ---------------------------------------------------------------------------------------- MLflow invocations


@extend_schema(tags=["mlflow"])
class MlflowInvocationsApi(APIView):
    """MLflow's scoring protocol: its request bodies in, ``{"predictions": [...]}`` out.

    Besides the token header, the token is accepted as the password of HTTP basic authentication, so MLflow's
    own scoring client (``requests`` with a ``.netrc`` entry) calls a soft sensor unchanged.
    """

    permission_classes = [CanPredict]
    parser_classes = [JSONParser]
    authentication_classes = [*api_settings.DEFAULT_AUTHENTICATION_CLASSES, TokenBasicAuthentication]

    @extend_schema(request=OpenApiTypes.OBJECT, responses=OpenApiTypes.OBJECT)
    def post(self, request: Request, project_id: str, model_id: str, version: str | None = None) -> Response:
        spec = v2_model(f"{project_id}:{model_id}", version)
        result = services.version_predict_body(spec=spec, body=request.data)
        return Response({"predictions": json_numbers(result.predictions)})


@extend_schema(tags=["mlflow"])
class MlflowPingApi(APIView):
    permission_classes = [CanPredict]
    authentication_classes = [*api_settings.DEFAULT_AUTHENTICATION_CLASSES, TokenBasicAuthentication]

    @extend_schema(responses=OpenApiTypes.OBJECT)
    def get(self, request: Request, project_id: str, model_id: str, version: str | None = None) -> Response:
        spec = v2_model(f"{project_id}:{model_id}", version)
        services.version_servable(spec=spec)
        return Response({"status": "ok"})
