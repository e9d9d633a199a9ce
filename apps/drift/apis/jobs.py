"""Drift jobs: list, create, read, change, delete, run now."""
from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.common.pagination import page_serializer, paginated_response

from .. import selectors, services
from ..models import DriftJob, ResultStatus, ResultTrigger, VerdictRule
from .common import CanRun, CanView, target_fields
from .runs import ResultOutput

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

    def _job_soft_sensor(self, job: DriftJob) -> Any:
        return job.soft_sensor if job.soft_sensor_id else job.deployment.soft_sensor

    def get_project_id(self, job: DriftJob) -> str:
        return self._job_soft_sensor(job).project.project_id

    def get_model_id(self, job: DriftJob) -> str:
        return self._job_soft_sensor(job).model_id


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
        responses=page_serializer(JobOutput(many=True), "PaginatedDriftJobList"), operation_id="drift_job_list",
    )
    def get(self, request: Request) -> Response:
        filters = self.JobFilter(data=request.query_params)
        filters.is_valid(raise_exception=True)
        return paginated_response(request, self, selectors.job_list(**filters.validated_data), JobOutput)


class JobCreateApi(APIView):
    permission_classes = [CanRun]

    @extend_schema(request=JobInput, responses={201: JobOutput}, operation_id="drift_job_create")
    def post(self, request: Request) -> Response:
        serializer = JobInput(data=request.data)
        serializer.is_valid(raise_exception=True)
        job = services.drift_job_create(user=request.user, **target_fields(serializer.validated_data))
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
        services.drift_job_update(job=job, data=target_fields(given))
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


