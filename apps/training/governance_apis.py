"""REST API of training plans, champion/challenger comparisons and promotion requests (under /api/v1/training/).

Plans and comparisons need ``train_models``; approving a promotion request also needs the approver's electronic
signature (and ``sign_records``), checked by the registry's alias move.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.audit.serializers import SignatureInputSerializer, signature_input
from apps.common.errors import ValidationFailed
from apps.common.permissions import capability

from . import selectors, services
from .apis import RunSummaryOutput
from .models import RunTrigger, TrainingPlan

CanTrain = capability("train_models")


# ---------------------------------------------------------------------------------------------- plans


class PlanOutput(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    description = serializers.CharField()
    project_id = serializers.CharField(source="project.project_id")
    config = serializers.JSONField()
    device_id = serializers.CharField()
    batch_pattern = serializers.CharField()
    window_days = serializers.IntegerField()
    holdout_newest = serializers.IntegerField()
    quiet_seconds = serializers.IntegerField()
    max_batches = serializers.IntegerField()
    schedule = serializers.CharField()
    periodic_task = serializers.CharField(source="periodic_task.name", default=None)
    deployment = serializers.CharField(source="deployment.name", default=None)
    on_drift_alert = serializers.BooleanField()
    lab_error_threshold = serializers.FloatField(allow_null=True)
    lab_error_samples = serializers.IntegerField()
    enabled = serializers.BooleanField()
    created_by = serializers.CharField(source="created_by.username", default=None)
    trigger_state = serializers.JSONField()
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()


class PlanInput(serializers.Serializer):
    """A plan: a training request without batches and split (``config``), the batch rule and the triggers."""

    name = serializers.SlugField(max_length=100)
    description = serializers.CharField(required=False, allow_blank=True, default="")
    project_id = serializers.CharField()
    config = serializers.DictField(help_text="target, features, learners, gates, bias, alias, model_id, ...")
    device_id = serializers.CharField(required=False, allow_blank=True, default="")
    batch_pattern = serializers.CharField(required=False, allow_blank=True, default="", max_length=128)
    window_days = serializers.IntegerField(required=False, default=90, min_value=1, max_value=3650)
    holdout_newest = serializers.IntegerField(required=False, default=2, min_value=1, max_value=50)
    quiet_seconds = serializers.IntegerField(required=False, default=3600, min_value=0)
    max_batches = serializers.IntegerField(required=False, default=30, min_value=2, max_value=500)
    schedule = serializers.CharField(required=False, allow_blank=True, default="", max_length=100)
    deployment = serializers.CharField(required=False, allow_null=True, default=None)
    on_drift_alert = serializers.BooleanField(required=False, default=False)
    lab_error_threshold = serializers.FloatField(required=False, allow_null=True, default=None)
    lab_error_samples = serializers.IntegerField(required=False, default=5, min_value=1, max_value=500)
    enabled = serializers.BooleanField(required=False, default=True)


def _plan_fields(data: dict[str, Any]) -> dict[str, Any]:
    """Project and deployment named by id/name → rows (400 naming what is unknown)."""
    from apps.common.errors import NotFound  # noqa: PLC0415
    from apps.orchestrator.selectors import deployment_get  # noqa: PLC0415
    from apps.registry.selectors import project_get  # noqa: PLC0415

    data = dict(data)
    if "project_id" in data:
        try:
            data["project"] = project_get(project_id=data.pop("project_id"))
        except NotFound as exc:
            raise ValidationFailed(exc.message, details={"project_id": "unknown"}) from None
    if data.get("deployment") not in (None, ""):
        try:
            data["deployment"] = deployment_get(deployment_id=data["deployment"])
        except NotFound as exc:
            raise ValidationFailed(exc.message, details={"deployment": "unknown"}) from None
    elif "deployment" in data:
        data["deployment"] = None
    return data


class TrainingPlanListApi(APIView):
    permission_classes = [CanTrain]

    @extend_schema(operation_id="training_plan_list", responses=PlanOutput(many=True))
    def get(self, request: Request) -> Response:
        return Response(PlanOutput(selectors.plan_list(), many=True).data)


class TrainingPlanCreateApi(APIView):
    """Create a plan; its schedule becomes a beat entry (Periodic tasks in the admin)."""

    permission_classes = [CanTrain]

    @extend_schema(operation_id="training_plan_create", request=PlanInput, responses={201: PlanOutput})
    def post(self, request: Request) -> Response:
        serializer = PlanInput(data=request.data)
        serializer.is_valid(raise_exception=True)
        plan = services.training_plan_create(user=request.user, **_plan_fields(serializer.validated_data))
        return Response(PlanOutput(selectors.plan_get(plan_id=plan.pk)).data, status=status.HTTP_201_CREATED)


class TrainingPlanDetailApi(APIView):
    permission_classes = [CanTrain]

    @extend_schema(
        operation_id="training_plan_detail",
        responses=inline_serializer(
            "TrainingPlanDetail",
            fields={"plan": PlanOutput(), "runs": RunSummaryOutput(many=True), "batches_now": serializers.JSONField()},
        ),
    )
    def get(self, request: Request, plan_id: int) -> Response:
        plan = selectors.plan_get(plan_id=plan_id)
        batches, holdout = services.plan_batches(plan)
        return Response(
            {
                "plan": PlanOutput(plan).data,
                "runs": RunSummaryOutput(selectors.plan_runs(plan=plan), many=True).data,
                "batches_now": {"batches": batches, "holdout": holdout},
            }
        )


class TrainingPlanUpdateApi(APIView):
    permission_classes = [CanTrain]

    @extend_schema(operation_id="training_plan_update", request=PlanInput(partial=True), responses=PlanOutput)
    def patch(self, request: Request, plan_id: int) -> Response:
        plan = selectors.plan_get(plan_id=plan_id)
        serializer = PlanInput(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        given = {k: v for k, v in serializer.validated_data.items() if k in request.data}
        services.training_plan_update(plan=plan, data=_plan_fields(given))
        return Response(PlanOutput(selectors.plan_get(plan_id=plan.pk)).data)


class TrainingPlanDeleteApi(APIView):
    permission_classes = [CanTrain]

    @extend_schema(operation_id="training_plan_delete", request=None, responses={204: None})
    def post(self, request: Request, plan_id: int) -> Response:
        services.training_plan_delete(plan=selectors.plan_get(plan_id=plan_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


class TrainingPlanTriggerApi(APIView):
    """Run the plan now (a manual trigger): 202 with the run, or 409 saying why it was skipped."""

    permission_classes = [CanTrain]

    @extend_schema(operation_id="training_plan_trigger", request=None, responses={202: RunSummaryOutput})
    def post(self, request: Request, plan_id: int) -> Response:
        import uuid  # noqa: PLC0415

        from apps.common.errors import Conflict  # noqa: PLC0415

        plan = selectors.plan_get(plan_id=plan_id)
        run = services.training_plan_trigger(
            plan_id=plan.pk,
            trigger=RunTrigger.MANUAL,
            key=f"manual:{uuid.uuid4()}",
            detail={"requested_by": request.user.username},
        )
        if run is None:
            reason = (TrainingPlan.objects.get(pk=plan.pk).trigger_state or {}).get("last_skipped", {})
            raise Conflict(
                f"plan {plan.name}: no run started: {reason.get('reason', 'skipped')}", details={"skipped": reason}
            )
        return Response(RunSummaryOutput(selectors.run_get(run_id=run.pk)).data, status=status.HTTP_202_ACCEPTED)


# ------------------------------------------------------------------------------ champion and challenger


class VerdictOutput(serializers.Serializer):
    n = serializers.IntegerField()
    champion_rmse = serializers.FloatField(allow_null=True)
    challenger_rmse = serializers.FloatField(allow_null=True)
    champion_bias = serializers.FloatField(allow_null=True)
    challenger_bias = serializers.FloatField(allow_null=True)
    wilcoxon_statistic = serializers.FloatField(allow_null=True)
    wilcoxon_p = serializers.FloatField(allow_null=True)
    dm_statistic = serializers.FloatField(allow_null=True)
    dm_p = serializers.FloatField(allow_null=True)
    confidence = serializers.FloatField()
    min_samples = serializers.IntegerField()
    challenger_better = serializers.BooleanField()
    reason = serializers.CharField()


class PairOutput(serializers.Serializer):
    group = serializers.CharField()
    target = serializers.CharField()
    lab_time = serializers.DateTimeField()
    lab_value = serializers.FloatField()
    champion_residual = serializers.FloatField()
    challenger_residual = serializers.FloatField()


class PromotionRequestOutput(serializers.Serializer):
    id = serializers.IntegerField()
    status = serializers.CharField()
    champion = serializers.CharField(source="champion.name")
    challenger = serializers.CharField(source="challenger.name")
    model_id = serializers.CharField(source="soft_sensor.model_id")
    alias = serializers.CharField()
    version = serializers.IntegerField(source="version.number")
    evidence = serializers.JSONField()
    proposed_by = serializers.CharField(source="proposed_by.username", default=None)
    decided_by = serializers.CharField(source="decided_by.username", default=None)
    decided_at = serializers.DateTimeField(allow_null=True)
    decision_note = serializers.CharField()
    created_at = serializers.DateTimeField()


class ComparisonOutput(serializers.Serializer):
    champion = serializers.CharField(source="champion_label")
    challenger = serializers.CharField(source="challenger_label")
    challenger_id = serializers.IntegerField(source="challenger.pk")
    since = serializers.DateTimeField()
    verdict = VerdictOutput()
    proposable = serializers.BooleanField()
    not_proposable = serializers.CharField()
    pending = PromotionRequestOutput(allow_null=True)
    pairs = PairOutput(many=True)


def _challenger(deployment_id: int) -> Any:
    from apps.orchestrator.selectors import deployment_get  # noqa: PLC0415

    return deployment_get(deployment_id=deployment_id)


class ChallengerListApi(APIView):
    """Every shadow deployment compared with its champion on the lab samples both scored."""

    permission_classes = [CanTrain]

    @extend_schema(operation_id="training_challenger_list", responses=ComparisonOutput(many=True))
    def get(self, request: Request) -> Response:
        return Response(ComparisonOutput(services.challengers_all(), many=True).data)


class ChallengerDetailApi(APIView):
    permission_classes = [CanTrain]

    @extend_schema(operation_id="training_challenger_detail", responses=ComparisonOutput)
    def get(self, request: Request, deployment_id: int) -> Response:
        return Response(ComparisonOutput(services.challenger_compare(challenger=_challenger(deployment_id))).data)


class ChallengerReviewApi(APIView):
    """Refresh both lab ledgers and compare now; propose the promotion when the challenger is better."""

    permission_classes = [CanTrain]

    @extend_schema(
        operation_id="training_challenger_review",
        request=None,
        responses=inline_serializer(
            "ChallengerReview",
            fields={"proposed": PromotionRequestOutput(allow_null=True), "comparison": ComparisonOutput()},
        ),
    )
    def post(self, request: Request, deployment_id: int) -> Response:
        challenger = _challenger(deployment_id)
        proposal = services.challenger_review(challenger=challenger)
        comparison = services.challenger_compare(challenger=challenger)
        return Response(
            {
                "proposed": PromotionRequestOutput(proposal).data if proposal else None,
                "comparison": ComparisonOutput(comparison).data,
            }
        )


class PromotionRequestListApi(APIView):
    permission_classes = [CanTrain]

    @extend_schema(
        operation_id="training_promotion_request_list",
        parameters=[OpenApiParameter("status", str, required=False)],
        responses=PromotionRequestOutput(many=True),
    )
    def get(self, request: Request) -> Response:
        rows = selectors.promotion_request_list(status=request.query_params.get("status") or None)[:200]
        return Response(PromotionRequestOutput(rows, many=True).data)


class PromotionRequestApproveApi(APIView):
    """Approve a proposed promotion: the alias moves with the approver's electronic signature (required)."""

    permission_classes = [CanTrain]

    class InputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "PromotionRequestApproveInput"

        note = serializers.CharField(required=False, allow_blank=True, default="")
        signature = SignatureInputSerializer()

    @extend_schema(
        operation_id="training_promotion_request_approve", request=InputSerializer, responses=PromotionRequestOutput
    )
    def post(self, request: Request, request_id: int) -> Response:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        approved = services.promotion_request_approve(
            request=selectors.promotion_request_get(request_id=request_id),
            user=request.user,
            signature=signature_input(serializer.validated_data["signature"]),
            note=serializer.validated_data["note"],
        )
        return Response(PromotionRequestOutput(approved).data)


class PromotionRequestDismissApi(APIView):
    permission_classes = [CanTrain]

    class InputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "PromotionRequestDismissInput"

        note = serializers.CharField()

    @extend_schema(
        operation_id="training_promotion_request_dismiss", request=InputSerializer, responses=PromotionRequestOutput
    )
    def post(self, request: Request, request_id: int) -> Response:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        dismissed = services.promotion_request_dismiss(
            request=selectors.promotion_request_get(request_id=request_id),
            user=request.user,
            note=serializer.validated_data["note"],
        )
        return Response(PromotionRequestOutput(dismissed).data)
