"""Alerts and their lifecycle: list, history, acknowledge, resolve; silences; a deployment's drift status.

Who may do what is ``apps.drift.access`` (the same rule the pages apply).
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.common.fields import id_field
from apps.common.pagination import page_serializer, paginated_response

from .. import selectors, services
from ..access import ALERT_ACTIONS, alert_action_allowed
from ..models import Alert, AlertState, Severity
from .common import CanView, deployment_named


def _may(action: str) -> type[BasePermission]:
    class AlertActionPermission(BasePermission):
        message = (f"Your role does not allow this ({action} needs one of: "
                   f"{', '.join(ALERT_ACTIONS[action])}).")

        def has_permission(self, request: Request, view: APIView) -> bool:
            return alert_action_allowed(request.user, action)

    AlertActionPermission.__name__ = f"May{action.title()}Alerts"
    return AlertActionPermission


def _username(user: Any) -> str | None:
    return user.get_username() if user is not None else None


STATE_FILTERS = [*AlertState.values, "active"]


class AlertOutput(serializers.Serializer):
    id = serializers.IntegerField()
    job = serializers.IntegerField(source="job_id")
    job_name = serializers.CharField(source="job.name")
    detector = serializers.CharField(source="job.detector")
    deployment = serializers.SerializerMethodField()
    severity = serializers.CharField()
    message = serializers.CharField()
    occurrences = serializers.IntegerField()
    result = serializers.IntegerField(source="result_id")
    last_result = serializers.IntegerField(source="last_result_id")
    batches = serializers.SerializerMethodField(help_text="device/batch the latest drift verdict tested.")
    version = serializers.CharField(source="last_result.version", help_text="Version tag the verdict was on.")
    state = serializers.ChoiceField(choices=AlertState.choices)
    open = serializers.BooleanField(source="is_open")
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()
    acknowledged_by = serializers.SerializerMethodField()
    acknowledged_at = serializers.DateTimeField(allow_null=True)
    acknowledge_note = serializers.CharField()
    resolved_by = serializers.SerializerMethodField()
    resolved_at = serializers.DateTimeField(allow_null=True)
    resolve_reason = serializers.CharField()
    resolved_by_result = serializers.IntegerField(source="resolved_by_result_id", allow_null=True)

    def get_deployment(self, alert: Alert) -> str | None:
        return alert.job.deployment.name if alert.job.deployment_id else None

    def get_batches(self, alert: Alert) -> list[str]:
        return list(selectors.alert_batches(alert))

    def get_acknowledged_by(self, alert: Alert) -> str | None:
        return _username(alert.acknowledged_by)

    def get_resolved_by(self, alert: Alert) -> str | None:
        return _username(alert.resolved_by)


class AlertListApi(APIView):
    """Alerts, newest first, paginated; filters: state (open / acknowledged / resolved / active), job,
    deployment, severity."""

    permission_classes = [CanView]

    class AlertFilter(serializers.Serializer):
        state = serializers.ChoiceField(choices=STATE_FILTERS, required=False)
        job = id_field(required=False)
        deployment = serializers.CharField(required=False)
        severity = serializers.ChoiceField(choices=Severity.choices, required=False)

    @extend_schema(
        parameters=[OpenApiParameter("state", str, enum=STATE_FILTERS), OpenApiParameter("job", int),
                    OpenApiParameter("deployment", str), OpenApiParameter("severity", str, enum=Severity.values),
                    OpenApiParameter("page", int), OpenApiParameter("page_size", int)],
        responses=page_serializer(AlertOutput(many=True), "PaginatedDriftAlertList"),
        operation_id="drift_alert_list",
    )
    def get(self, request: Request) -> Response:
        filters = self.AlertFilter(data=request.query_params)
        filters.is_valid(raise_exception=True)
        return paginated_response(request, self, selectors.alert_list(**filters.validated_data), AlertOutput)


class AlertDetailApi(APIView):
    permission_classes = [CanView]

    @extend_schema(responses=AlertOutput, operation_id="drift_alert_detail")
    def get(self, request: Request, alert_id: int) -> Response:
        return Response(AlertOutput(selectors.alert_get(alert_id=alert_id)).data)


class AlertEventOutput(serializers.Serializer):
    id = serializers.IntegerField()
    action = serializers.CharField()
    by = serializers.SerializerMethodField()
    at = serializers.DateTimeField()
    note = serializers.CharField()
    automatic = serializers.BooleanField()
    result = serializers.IntegerField(source="result_id", allow_null=True)

    def get_by(self, event: Any) -> str | None:
        return _username(event.by)


class AlertHistoryApi(APIView):
    """Every transition of the alert, oldest first: opened, acknowledged, resolved (who, when, why)."""

    permission_classes = [CanView]

    @extend_schema(parameters=[OpenApiParameter("page", int), OpenApiParameter("page_size", int)],
                   responses=page_serializer(AlertEventOutput(many=True), "PaginatedDriftAlertEventList"),
                   operation_id="drift_alert_history")
    def get(self, request: Request, alert_id: int) -> Response:
        alert = selectors.alert_get(alert_id=alert_id)
        return paginated_response(request, self, selectors.alert_history(alert=alert), AlertEventOutput)


class AlertAcknowledgeApi(APIView):
    """Acknowledge an open alert with an optional note (409 unless it is open). Drift repeating on the same
    job updates the acknowledged alert; the job's next live check finding no drift resolves it."""

    permission_classes = [_may("acknowledge")]

    class AlertAcknowledgeInput(serializers.Serializer):
        note = serializers.CharField(required=False, allow_blank=True, default="", max_length=2000)

    @extend_schema(request=AlertAcknowledgeInput, responses=AlertOutput, operation_id="drift_alert_acknowledge")
    def post(self, request: Request, alert_id: int) -> Response:
        serializer = self.AlertAcknowledgeInput(data=request.data)
        serializer.is_valid(raise_exception=True)
        alert = services.alert_acknowledge(alert=selectors.alert_get(alert_id=alert_id), user=request.user,
                                           note=serializer.validated_data["note"])
        return Response(AlertOutput(selectors.alert_get(alert_id=alert.pk)).data)


class AlertResolveApi(APIView):
    """Resolve an open or acknowledged alert by hand; ``reason`` is required (409 when already resolved)."""

    permission_classes = [_may("resolve")]

    class AlertResolveInput(serializers.Serializer):
        reason = serializers.CharField(max_length=2000)

    @extend_schema(request=AlertResolveInput, responses=AlertOutput, operation_id="drift_alert_resolve")
    def post(self, request: Request, alert_id: int) -> Response:
        serializer = self.AlertResolveInput(data=request.data)
        serializer.is_valid(raise_exception=True)
        alert = services.alert_resolve(alert=selectors.alert_get(alert_id=alert_id), user=request.user,
                                       reason=serializer.validated_data["reason"])
        return Response(AlertOutput(selectors.alert_get(alert_id=alert.pk)).data)


# -- silences ---------------------------------------------------------------------------------------

class SilenceOutput(serializers.Serializer):
    id = serializers.IntegerField()
    deployment = serializers.CharField(source="deployment.name")
    detector = serializers.CharField(help_text="Empty: every detector.")
    until = serializers.DateTimeField()
    reason = serializers.CharField()
    created_by = serializers.SerializerMethodField()
    created_at = serializers.DateTimeField()
    ended_at = serializers.DateTimeField(allow_null=True)
    ended_by = serializers.SerializerMethodField()

    def get_created_by(self, silence: Any) -> str | None:
        return _username(silence.created_by)

    def get_ended_by(self, silence: Any) -> str | None:
        return _username(silence.ended_by)


class SilenceListApi(APIView):
    """Silences, newest first, paginated; filters: deployment (id or name), active (in force now)."""

    permission_classes = [CanView]

    class SilenceFilter(serializers.Serializer):
        deployment = serializers.CharField(required=False)
        active = serializers.BooleanField(required=False, allow_null=True, default=None)

    @extend_schema(
        parameters=[OpenApiParameter("deployment", str), OpenApiParameter("active", bool),
                    OpenApiParameter("page", int), OpenApiParameter("page_size", int)],
        responses=page_serializer(SilenceOutput(many=True), "PaginatedDriftSilenceList"),
        operation_id="drift_silence_list",
    )
    def get(self, request: Request) -> Response:
        filters = self.SilenceFilter(data=request.query_params)
        filters.is_valid(raise_exception=True)
        return paginated_response(request, self, selectors.silence_list(**filters.validated_data), SilenceOutput)


class SilenceCreateApi(APIView):
    """Silence a deployment's alerts of one detector (or of every detector) until a time, with a reason."""

    permission_classes = [_may("silence")]

    class SilenceInput(serializers.Serializer):
        deployment = serializers.CharField(help_text="Deployment id or name.")
        detector = serializers.CharField(required=False, allow_blank=True, default="", max_length=64)
        until = serializers.DateTimeField()
        reason = serializers.CharField(max_length=2000)

    @extend_schema(request=SilenceInput, responses={201: SilenceOutput}, operation_id="drift_silence_create")
    def post(self, request: Request) -> Response:
        serializer = self.SilenceInput(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        silence = services.alert_silence_create(deployment=deployment_named(data["deployment"]),
                                                detector=data["detector"], until=data["until"],
                                                reason=data["reason"], user=request.user)
        return Response(SilenceOutput(selectors.silence_get(silence_id=silence.pk)).data,
                        status=status.HTTP_201_CREATED)


class SilenceDeleteApi(APIView):
    """End a silence now (the row stays in the list and the audit trail, with who ended it)."""

    permission_classes = [_may("silence")]

    @extend_schema(request=None, responses=SilenceOutput, operation_id="drift_silence_delete")
    def post(self, request: Request, silence_id: int) -> Response:
        silence = services.alert_silence_end(silence=selectors.silence_get(silence_id=silence_id), user=request.user)
        return Response(SilenceOutput(selectors.silence_get(silence_id=silence.pk)).data)


# -- status -----------------------------------------------------------------------------------------

class ListedAlertOutput(serializers.Serializer):
    alert = AlertOutput()
    why_not_counted = serializers.CharField()


class LastCheckOutput(serializers.Serializer):
    id = serializers.IntegerField()
    job_name = serializers.CharField(source="job.name")
    detector = serializers.CharField()
    status = serializers.CharField()
    drift = serializers.BooleanField()
    batches = serializers.ListField(child=serializers.CharField(), source="tested_batches")
    created_at = serializers.DateTimeField()


class DriftStatusOutput(serializers.Serializer):
    deployment = serializers.CharField(source="deployment.name")
    version = serializers.CharField(allow_null=True, help_text="The version tag it runs now.")
    live_batches = serializers.ListField(child=serializers.CharField(), help_text="device/batch it scores now.")
    light = serializers.ChoiceField(choices=["critical", "warning", "ok"], source="light_name")
    counted = AlertOutput(many=True, help_text="Open, unsilenced alerts on what it scores now: the light.")
    listed = ListedAlertOutput(many=True, source="listed_rows", help_text="Active alerts that do not count, and why.")
    last_check = LastCheckOutput(allow_null=True, help_text="Its newest live check (never an ad hoc run).")
    silences = SilenceOutput(many=True)


class DriftStatusApi(APIView):
    """A deployment's drift status by the status-light rule of docs/dashboard.md (what every page shows)."""

    permission_classes = [CanView]

    @extend_schema(responses=DriftStatusOutput, operation_id="drift_status")
    def get(self, request: Request, deployment: str) -> Response:
        found = selectors.deployment_alert_status(deployment=deployment_named(deployment))
        return Response(DriftStatusOutput(found).data)
