"""Admin of the drift app: jobs (validated and scheduled through the services), results, alerts, the
residual ledger and the settings."""
from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from apps.audit.admin import AuditHistoryMixin
from apps.common.errors import ApplicationError

from . import services
from .models import (
    Alert,
    AlertEvent,
    AlertSilence,
    AlertState,
    DriftJob,
    DriftResult,
    LabResidual,
    LabScoringSettings,
    ProjectDriftSettings,
)


class DriftJobForm(forms.ModelForm):
    class Meta:
        model = DriftJob
        fields = "__all__"

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        if self.errors:
            return cleaned
        job = self.instance
        for name, value in cleaned.items():
            setattr(job, name, value)
        try:
            services.drift_job_validate(job=job)
        except ApplicationError as exc:
            raise forms.ValidationError(exc.message) from None
        for name in ("params", "variables", "reference", "test", "calibration"):
            cleaned[name] = getattr(job, name)
        return cleaned


@admin.register(DriftJob)
class DriftJobAdmin(admin.ModelAdmin):
    form = DriftJobForm
    list_display = ("name", "detector", "deployment", "soft_sensor", "verdict_rule", "schedule_seconds", "enabled",
                    "last_run_at")
    list_filter = ("detector", "enabled", "verdict_rule")
    search_fields = ("name", "description", "deployment__name", "soft_sensor__model_id")
    readonly_fields = ("periodic_task", "last_run_at", "created_by", "created_at", "updated_at")
    actions = ["run_now"]

    def save_model(self, request: HttpRequest, obj: DriftJob, form: Any, change: bool) -> None:
        if not change:
            obj.created_by = request.user
        super().save_model(request, obj, form, change)
        services.drift_job_schedule_sync(job=obj)

    def delete_model(self, request: HttpRequest, obj: DriftJob) -> None:
        services.drift_job_delete(job=obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[DriftJob]) -> None:
        for job in queryset:
            services.drift_job_delete(job=job)

    @admin.action(description="Run the selected jobs now")
    def run_now(self, request: HttpRequest, queryset: QuerySet[DriftJob]) -> None:
        for job in queryset:
            result = services.drift_job_run(job=job, trigger="manual", user=request.user)
            level = messages.ERROR if result.status == "failed" else messages.INFO
            self.message_user(request, f"{job.name}: {result.error or result.explanation}", level)


@admin.register(DriftResult)
class DriftResultAdmin(admin.ModelAdmin):
    list_display = ("id", "created_at", "job", "detector", "trigger", "status", "drift", "score", "threshold",
                    "verdict_rule", "runtime_ms")
    list_filter = ("status", "drift", "trigger", "detector", "verdict_rule")
    search_fields = ("job__name", "explanation", "error")
    list_select_related = ("job",)
    readonly_fields = [f.name for f in DriftResult._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


class AlertEventInline(admin.TabularInline):
    """The alert's history (read-only: transitions are written by the services)."""

    model = AlertEvent
    extra = 0
    can_delete = False
    fields = readonly_fields = ("at", "action", "by", "automatic", "note", "result")

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Alert)
class AlertAdmin(AuditHistoryMixin, admin.ModelAdmin):
    list_display = ("id", "created_at", "job", "severity", "state", "occurrences", "acknowledged_by", "resolved_at")
    list_filter = ("state", "severity")
    search_fields = ("job__name", "message")
    list_select_related = ("job", "acknowledged_by")
    readonly_fields = ("job", "result", "last_result", "severity", "message", "occurrences", "state", "created_at",
                       "updated_at", "acknowledged_by", "acknowledged_at", "acknowledge_note", "resolved_by",
                       "resolved_at", "resolve_reason", "resolved_by_result")
    inlines = [AlertEventInline]
    actions = ["acknowledge"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.action(description="Acknowledge the selected open alerts")
    def acknowledge(self, request: HttpRequest, queryset: QuerySet[Alert]) -> None:
        done = 0
        for alert in queryset.filter(state=AlertState.OPEN):
            services.alert_acknowledge(alert=alert, user=request.user, note="acknowledged in the admin")
            done += 1
        self.message_user(request, f"{done} alert(s) acknowledged.")


@admin.register(AlertSilence)
class AlertSilenceAdmin(AuditHistoryMixin, admin.ModelAdmin):
    """Silences are set and ended through the services (validated, audited); the admin lists them."""

    list_display = ("id", "deployment", "detector", "until", "reason", "created_by", "ended_at")
    list_filter = ("detector",)
    list_select_related = ("deployment", "created_by")
    readonly_fields = [f.name for f in AlertSilence._meta.fields]
    actions = ["end_now"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.action(description="End the selected silences now")
    def end_now(self, request: HttpRequest, queryset: QuerySet[AlertSilence]) -> None:
        from django.utils import timezone

        ended = 0
        for silence in queryset:
            if silence.active_at(timezone.now()):
                services.alert_silence_end(silence=silence, user=request.user)
                ended += 1
        self.message_user(request, f"{ended} silence(s) ended.")


@admin.register(LabResidual)
class LabResidualAdmin(admin.ModelAdmin):
    list_display = ("deployment", "batch_id", "lab_time", "lab_value", "predicted_value", "residual", "version")
    list_filter = ("deployment", "target")
    search_fields = ("batch_id", "device_id")
    list_select_related = ("deployment",)
    readonly_fields = [f.name for f in LabResidual._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


@admin.register(LabScoringSettings)
class LabScoringSettingsAdmin(admin.ModelAdmin):
    list_display = ("deployment", "target", "lab_property", "tolerance_seconds", "rolling_samples", "event_k",
                    "enabled")
    actions = ["refresh_ledger"]

    @admin.action(description="Recompute the residual ledger of the selected deployments")
    def refresh_ledger(self, request: HttpRequest, queryset: QuerySet[LabScoringSettings]) -> None:
        for item in queryset.select_related("deployment__soft_sensor__project"):
            change = services.lab_ledger_refresh(deployment=item.deployment)
            self.message_user(request, f"{item.deployment}: {change.as_dict()}")


@admin.register(ProjectDriftSettings)
class ProjectDriftSettingsAdmin(admin.ModelAdmin):
    list_display = ("project_name", "phases")
