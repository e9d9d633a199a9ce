"""REST API of the training app under /api/v1/training/ (one APIView per operation).

Everything needs the ``train_models`` capability (modelers and admins).
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.audit.serializers import SignatureInputSerializer, signature_input
from apps.common.permissions import capability
from apps.orchestrator.selectors import bias_corrections, deployment_get
from apps.orchestrator.services import bias_correction_apply

from . import selectors, services
from .models import TrainingRun

CanTrain = capability("train_models")


def _project(project_id: str) -> Any:
    from apps.registry.selectors import project_get  # noqa: PLC0415

    return project_get(project_id=project_id)


class StepOutput(serializers.Serializer):
    name = serializers.CharField()
    status = serializers.CharField()
    attempts = serializers.IntegerField()
    started_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)
    duration_ms = serializers.FloatField(allow_null=True)
    output = serializers.JSONField()
    error = serializers.CharField()


class CandidateOutput(serializers.Serializer):
    id = serializers.IntegerField()
    learner = serializers.CharField()
    hyperparameters = serializers.JSONField()
    status = serializers.CharField()
    error = serializers.CharField()
    fit_seconds = serializers.FloatField(allow_null=True)
    metrics = serializers.JSONField()
    gates = serializers.JSONField()
    passed = serializers.BooleanField(allow_null=True)
    version = serializers.IntegerField(source="version.number", default=None)
    version_status = serializers.CharField(source="version.status", default=None)
    version_sha256 = serializers.SerializerMethodField(help_text="What a signature on the candidate binds to.")

    def get_version_sha256(self, candidate: Any) -> str | None:
        from apps.registry.selectors import version_sha256  # noqa: PLC0415

        return version_sha256(candidate.version) if candidate.version_id else None


class RunSummaryOutput(serializers.Serializer):
    id = serializers.IntegerField()
    uid = serializers.UUIDField()
    project_id = serializers.CharField(source="project.project_id")
    model_id = serializers.CharField()
    target = serializers.CharField()
    status = serializers.CharField()
    current_step = serializers.CharField()
    error = serializers.CharField()
    created_by = serializers.CharField(source="created_by.username", default=None)
    created_at = serializers.DateTimeField()
    started_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)
    best_candidate = serializers.CharField(source="best_candidate.learner", default=None)
    promoted_version = serializers.IntegerField(source="promoted_version.number", default=None)
    alias = serializers.SerializerMethodField()
    trigger = serializers.CharField()
    plan = serializers.CharField(source="plan.name", default=None)

    def get_alias(self, run: TrainingRun) -> str:
        return run.config.get("alias", "")


class RunDetailOutput(RunSummaryOutput):
    config = serializers.JSONField()
    dataset = serializers.JSONField()
    baselines = serializers.JSONField()
    approved_by = serializers.CharField(source="approved_by.username", default=None, allow_null=True)
    approved_at = serializers.DateTimeField(allow_null=True)
    trigger_detail = serializers.JSONField()
    steps = StepOutput(many=True)
    candidates = CandidateOutput(many=True)


class TrainingRunStartApi(APIView):
    """Start a training run: validated now (400 naming the field), executed by the Celery workflow."""

    permission_classes = [CanTrain]

    class InputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "TrainingRunStartInput"

        project_id = serializers.CharField()
        target = serializers.CharField()
        batches = serializers.ListField(child=serializers.CharField(), min_length=2)
        device_id = serializers.CharField(required=False, allow_blank=True)
        features = serializers.ListField(child=serializers.CharField(), required=False)
        add_batch_age = serializers.BooleanField(required=False)
        preprocessing = serializers.DictField(required=False)
        split = serializers.DictField()
        learners = serializers.ListField(child=serializers.JSONField(), required=False)
        gates = serializers.DictField(required=False)
        alias = serializers.CharField(required=False, allow_blank=True)
        require_approval = serializers.BooleanField(required=False)
        model_id = serializers.CharField(required=False)
        lab_delay_seconds = serializers.IntegerField(required=False, min_value=0)
        phases = serializers.ListField(child=serializers.DictField(), required=False)
        author = serializers.CharField(required=False, allow_blank=True)

    @extend_schema(operation_id="training_run_start", request=InputSerializer, responses={202: RunDetailOutput})
    def post(self, request: Request) -> Response:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        project = _project(data.pop("project_id"))
        run = services.training_run_start(user=request.user, project=project, data=data)
        return Response(RunDetailOutput(selectors.run_get(run_id=run.pk)).data, status=status.HTTP_202_ACCEPTED)


class TrainingRunListApi(APIView):
    permission_classes = [CanTrain]

    @extend_schema(
        operation_id="training_run_list",
        parameters=[OpenApiParameter("project_id", str, required=False)],
        responses=inline_serializer("TrainingRunList", fields={"results": RunSummaryOutput(many=True)}),
    )
    def get(self, request: Request) -> Response:
        project_id = request.query_params.get("project_id")
        runs = selectors.run_list(project=_project(project_id) if project_id else None)[:200]
        return Response({"results": RunSummaryOutput(runs, many=True).data})


class TrainingRunDetailApi(APIView):
    """A run with its steps and candidates: what the Train page polls for live progress."""

    permission_classes = [CanTrain]

    @extend_schema(operation_id="training_run_detail", responses=RunDetailOutput)
    def get(self, request: Request, run_id: int) -> Response:
        return Response(RunDetailOutput(selectors.run_get(run_id=run_id)).data)


class TrainingRunApproveApi(APIView):
    """Approve a waiting promotion. A signed alias (``production``) needs ``signature`` (the approver's password,
    meaning ``approved``, the candidate version's sha256); a refusal is a 403 ``signature_refused``."""

    permission_classes = [CanTrain]

    class InputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "TrainingRunApproveInput"

        note = serializers.CharField(required=False, allow_blank=True)
        signature = SignatureInputSerializer(required=False)

    @extend_schema(operation_id="training_run_approve", request=InputSerializer, responses=RunDetailOutput)
    def post(self, request: Request, run_id: int) -> Response:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        run = selectors.run_get(run_id=run_id)
        services.training_run_approve(
            run=run,
            user=request.user,
            note=serializer.validated_data.get("note", ""),
            signature=signature_input(serializer.validated_data.get("signature")),
        )
        return Response(RunDetailOutput(selectors.run_get(run_id=run_id)).data)


class TrainingRunPromoteApi(APIView):
    """Move an alias to a passing candidate, with the reason recorded; a signed alias needs ``signature``."""

    permission_classes = [CanTrain]

    class InputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "TrainingRunPromoteInput"

        alias = serializers.SlugField()
        learner = serializers.CharField(required=False, allow_blank=True)
        reason = serializers.CharField(required=False, allow_blank=True)
        signature = SignatureInputSerializer(required=False)

    @extend_schema(operation_id="training_run_promote", request=InputSerializer, responses=RunDetailOutput)
    def post(self, request: Request, run_id: int) -> Response:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        run = selectors.run_get(run_id=run_id)
        data = serializer.validated_data
        services.training_run_promote(
            run=run,
            user=request.user,
            alias=data["alias"],
            learner=data.get("learner") or None,
            reason=data.get("reason", ""),
            signature=signature_input(data.get("signature")),
        )
        return Response(RunDetailOutput(selectors.run_get(run_id=run_id)).data)


class TrainingOptionsApi(APIView):
    """Batches, variables, learners and the project's lab delay and phases, for the Train page."""

    permission_classes = [CanTrain]

    @extend_schema(
        operation_id="training_options",
        parameters=[OpenApiParameter("project_id", str, required=False)],
        responses=inline_serializer(
            "TrainingOptions",
            fields={
                "batches": serializers.JSONField(required=False),
                "variables": serializers.ListField(child=serializers.CharField(), required=False),
                "learners": serializers.JSONField(),
                "projects": serializers.JSONField(required=False),
            },
        ),
    )
    def get(self, request: Request) -> Response:
        project_id = request.query_params.get("project_id")
        if not project_id:
            from apps.registry.selectors import project_list  # noqa: PLC0415

            return Response(
                {
                    "projects": [{"project_id": p.project_id, "name": p.name} for p in project_list()],
                    "learners": selectors.learner_options(),
                }
            )
        options = selectors.project_options(project=_project(project_id))
        options["learners"] = selectors.learner_options()
        return Response(options)


class BiasCorrectionOutput(serializers.Serializer):
    number = serializers.IntegerField()
    enabled = serializers.BooleanField()
    alpha = serializers.FloatField()
    max_lab_age_seconds = serializers.IntegerField()
    lab_delay_seconds = serializers.IntegerField()
    lab_min = serializers.FloatField(allow_null=True)
    lab_max = serializers.FloatField(allow_null=True)
    reset_each_batch = serializers.BooleanField()
    reason = serializers.CharField()
    created_by = serializers.CharField(source="created_by.username", default=None)
    created_at = serializers.DateTimeField()
    applied_at = serializers.DateTimeField(allow_null=True)
    state = serializers.JSONField()


def _deployment(deployment_id: int) -> Any:
    return deployment_get(deployment_id=deployment_id)


class BiasCorrectionListApi(APIView):
    permission_classes = [CanTrain]

    @extend_schema(
        operation_id="training_bias_list",
        responses=inline_serializer("BiasCorrectionList", fields={"results": BiasCorrectionOutput(many=True)}),
    )
    def get(self, request: Request, deployment_id: int) -> Response:
        deployment = _deployment(deployment_id)
        return Response({"results": BiasCorrectionOutput(bias_corrections(deployment=deployment), many=True).data})


class BiasCorrectionConfigureApi(APIView):
    """A new version of a deployment's bias-update configuration."""

    permission_classes = [CanTrain]

    class InputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "BiasCorrectionConfigureInput"

        alpha = serializers.FloatField(min_value=0.0, max_value=1.0)
        enabled = serializers.BooleanField(required=False)
        max_lab_age_seconds = serializers.IntegerField(required=False, min_value=0)
        lab_delay_seconds = serializers.IntegerField(required=False, min_value=0)
        lab_min = serializers.FloatField(required=False, allow_null=True)
        lab_max = serializers.FloatField(required=False, allow_null=True)
        reset_each_batch = serializers.BooleanField(required=False)
        reason = serializers.CharField(required=False, allow_blank=True)

    @extend_schema(
        operation_id="training_bias_configure", request=InputSerializer, responses={201: BiasCorrectionOutput}
    )
    def post(self, request: Request, deployment_id: int) -> Response:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        config = services.bias_correction_configure(
            deployment=_deployment(deployment_id), user=request.user, data=serializer.validated_data
        )
        return Response(BiasCorrectionOutput(config).data, status=status.HTTP_201_CREATED)


class BiasCorrectionApplyApi(APIView):
    """Recompute the corrected values of the deployment's stored predictions now."""

    permission_classes = [CanTrain]

    @extend_schema(
        operation_id="training_bias_apply",
        request=None,
        responses=inline_serializer(
            "BiasCorrectionApplied",
            fields={
                "applied": serializers.BooleanField(),
                "version": serializers.IntegerField(required=False),
                "points": serializers.IntegerField(required=False),
                "series": serializers.JSONField(required=False),
                "reason": serializers.CharField(required=False),
            },
        ),
    )
    def post(self, request: Request, deployment_id: int) -> Response:
        return Response(bias_correction_apply(deployment=_deployment(deployment_id)))
