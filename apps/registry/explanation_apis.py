"""Explanation endpoints of a version (``docs/registry.md``, "Explanations").

- ``GET …/versions/{n}/explanation/`` (``view_process``): what the version depends on, measured on its holdout —
  permutation importance and partial-dependence curves of its top inputs (404 until one is stored).
- ``POST …/versions/{n}/explain/`` (``predict``: it runs the model): the contribution of each input of one row
  ``{"inputs": {feature: value}}`` to the raw estimate, with the base value they add up from, and the inputs
  outside the training envelope.
"""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.common.errors import NotFound, ValidationFailed
from apps.common.parsers import JSONParser

from . import selectors, services
from .permissions import CanPredict, CanView
from .serving import columns_matrix


class ImportanceSerializer(serializers.Serializer):
    feature = serializers.CharField()
    mean = serializers.FloatField(help_text="Holdout RMSE increase when the input is shuffled (mean of 3).")
    std = serializers.FloatField()


class CurveSerializer(serializers.Serializer):
    feature = serializers.CharField()
    grid = serializers.ListField(child=serializers.FloatField())
    average = serializers.ListField(child=serializers.FloatField(), help_text="Average estimate at each grid value.")


class ContributionSerializer(serializers.Serializer):
    feature = serializers.CharField()
    value = serializers.FloatField(help_text="The input's value in the explained row.")
    contribution = serializers.FloatField()


class OutsideSerializer(serializers.Serializer):
    feature = serializers.CharField()
    value = serializers.FloatField()
    bound = serializers.ChoiceField(choices=["min", "max"])
    limit = serializers.FloatField()


class EstimateExplanationSerializer(serializers.Serializer):
    output = serializers.CharField()
    method = serializers.ChoiceField(choices=["tree_shap", "exact_shapley", "sampled_shapley"])
    base_value = serializers.FloatField()
    raw_estimate = serializers.FloatField(help_text="base_value + the sum of the contributions.")
    contributions = ContributionSerializer(many=True)
    outside_envelope = OutsideSerializer(many=True)
    background = serializers.CharField(help_text="What the base value is measured over.")
    notes = serializers.ListField(child=serializers.CharField())


class ModelVersionExplanationApi(APIView):
    """What a version's estimates depend on, measured on its holdout."""

    permission_classes = [CanView]

    class OutputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "VersionExplanationOutput"

        version_id = serializers.IntegerField()
        version = serializers.IntegerField()
        output = serializers.CharField()
        source = serializers.CharField()
        computed_at = serializers.DateTimeField()
        rows = serializers.IntegerField()
        rmse = serializers.FloatField(allow_null=True)
        method = serializers.CharField()
        importance = ImportanceSerializer(many=True)
        partial_dependence = CurveSerializer(many=True)

    @extend_schema(responses=OutputSerializer)
    def get(self, request: Request, project_id: str, model_id: str, number: int) -> Response:
        spec = selectors.spec_get(project_id=project_id, model_id=model_id, number=number)
        stored = selectors.version_explanation_get(version_id=spec.version_id)
        if stored is None:
            raise NotFound(
                f"{spec.title} has no explanation yet: it is measured by the training workflow on its holdout.",
                code="no_explanation",
            )
        data = stored.data
        body = {
            "version_id": spec.version_id,
            "version": spec.number,
            "output": data.get("output", ""),
            "source": stored.source,
            "computed_at": stored.computed_at,
            "rows": data.get("rows", 0),
            "rmse": data.get("rmse"),
            "method": data.get("method", ""),
            "importance": data.get("importance", []),
            "partial_dependence": data.get("partial_dependence", []),
        }
        return Response(self.OutputSerializer(body).data)


class ModelVersionExplainApi(APIView):
    """Why the version estimates what it does for one row of inputs."""

    permission_classes = [CanPredict]
    parser_classes = [JSONParser]

    class InputSerializer(serializers.Serializer):
        inputs = serializers.DictField(child=serializers.FloatField(), help_text="{feature: value}, every feature.")
        output = serializers.CharField(required=False, help_text="Output name (default: the first).")

    @extend_schema(request=InputSerializer, responses=EstimateExplanationSerializer)
    def post(self, request: Request, project_id: str, model_id: str, number: int) -> Response:
        spec = selectors.spec_get(project_id=project_id, model_id=model_id, number=number)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        parsed = columns_matrix(data.validated_data["inputs"], spec.feature_names, "inputs")
        output = data.validated_data.get("output") or spec.output_names[0]
        if output not in spec.output_names:
            raise ValidationFailed(
                f"output: {output!r} is not an output of {spec.title} ({', '.join(spec.output_names)})",
                details={"output": output},
            )
        explained = services.estimate_explain(spec=spec, x=parsed.X[0], output=spec.output_names.index(output))
        return Response(EstimateExplanationSerializer(explained.as_dict()).data)
