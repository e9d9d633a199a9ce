"""Admin of the orchestrator: deployments (editable), watermarks and runs (read-only records)."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from apps.audit.admin import AuditHistoryMixin
from apps.common.errors import ApplicationError

from .models import BiasCorrection, Deployment, Heartbeat, PipelineRun, Watermark


@admin.register(Heartbeat)
class HeartbeatAdmin(admin.ModelAdmin):
    list_display = ("name", "last_seen", "hostname", "ok")
    readonly_fields = ("name", "last_seen", "hostname", "ok", "detail")


class DeploymentForm(forms.ModelForm):
    """Runs the service's rules in ``clean`` so a bad deployment is a form error, not a server error."""

    class Meta:
        model = Deployment
        exclude = ("created_by",)

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        if self.errors:
            return cleaned
        from .services import DEPLOYMENT_FIELDS, deployment_validate

        candidate = Deployment(pk=self.instance.pk, **{k: cleaned.get(k) for k in DEPLOYMENT_FIELDS if k in cleaned})
        candidate.alias = candidate.alias or ""
        candidate.device_ids = candidate.device_ids or []
        candidate.input_mapping = candidate.input_mapping or {}
        try:
            deployment_validate(candidate)
        except ApplicationError as exc:
            details = exc.details if isinstance(exc.details, dict) else {}
            for field, message in details.items():
                self.add_error(field if field in self.fields else None, message)
            if not details:
                raise forms.ValidationError(exc.message) from exc
        return cleaned


@admin.register(Deployment)
class DeploymentAdmin(AuditHistoryMixin, admin.ModelAdmin):
    form = DeploymentForm
    list_display = ("name", "soft_sensor", "target", "shadow_of", "enabled", "live_only", "batch_pattern", "updated_at")
    list_filter = ("enabled", "live_only", "soft_sensor__project")
    search_fields = ("name", "soft_sensor__model_id", "description")
    autocomplete_fields = ()
    raw_id_fields = ("soft_sensor", "pinned_version", "shadow_of")
    readonly_fields = ("created_by", "created_at", "updated_at")
    actions = ["detect_now"]

    @admin.display(description="model")
    def target(self, obj: Deployment) -> str:
        return obj.target_label

    def save_model(self, request: HttpRequest, obj: Deployment, form, change: bool) -> None:  # noqa: ANN001
        """Save through the services so the admin applies the same rules as the API."""
        from .services import DEPLOYMENT_FIELDS, deployment_create, deployment_update

        data = {name: getattr(obj, name) for name in DEPLOYMENT_FIELDS}
        if change:
            deployment_update(deployment=obj, data=data)
        else:
            created = deployment_create(user=request.user, **data)
            obj.pk = created.pk

    @admin.action(description="Detect now (queue runs for groups with new data)")
    def detect_now(self, request: HttpRequest, queryset: QuerySet[Deployment]) -> None:
        from .models import Trigger
        from .services import pipeline_detect

        queued = sum(pipeline_detect(deployment_id=d.pk, trigger=Trigger.MANUAL)["queued"] for d in queryset)
        self.message_user(request, f"{queued} run(s) queued.", messages.SUCCESS)


@admin.register(Watermark)
class WatermarkAdmin(admin.ModelAdmin):
    list_display = (
        "deployment",
        "project_name",
        "device_id",
        "batch_id",
        "watermark_ns",
        "pending",
        "lease_expires_at",
        "failures",
    )
    list_filter = ("pending", "deployment")
    search_fields = ("batch_id", "device_id", "project_name")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Watermark | None = None) -> bool:
        return False


@admin.register(PipelineRun)
class PipelineRunAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "deployment",
        "batch_id",
        "trigger",
        "status",
        "started_at",
        "snapshots",
        "predictions",
        "skipped",
    )
    list_filter = ("status", "trigger", "deployment", "started_at")
    search_fields = ("batch_id", "device_id", "error", "task_id")
    date_hierarchy = "started_at"
    list_select_related = ("deployment",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: PipelineRun | None = None) -> bool:
        return False


@admin.register(BiasCorrection)
class BiasCorrectionAdmin(AuditHistoryMixin, admin.ModelAdmin):
    """Read-only history: new versions are made through the API (``bias_correction_configure``)."""

    list_display = (
        "deployment",
        "number",
        "enabled",
        "alpha",
        "lab_delay_seconds",
        "max_lab_age_seconds",
        "applied_at",
    )
    list_filter = ("enabled",)
    readonly_fields = [f.name for f in BiasCorrection._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False
