"""Admin registrations of the registry app: administrators curate projects, variables and descriptors.

Versions stay immutable here too: only the descriptor is editable, and a change goes through the same
service as the API (validated, refused if it would change what the model computes, recorded in history).
"""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.http import HttpRequest

from apps.audit.admin import AuditHistoryMixin
from apps.common.errors import ApplicationError

from .descriptors import DescriptorError, validate_config
from .models import (
    Alias,
    AliasMove,
    DescriptorRevision,
    ModelVersion,
    Project,
    SigningPolicy,
    SoftSensor,
    Variable,
    VersionArtifact,
)
from .services import model_version_approve_pickle, model_version_update_descriptor


class VariableInline(admin.TabularInline):
    model = Variable
    extra = 0
    fields = ("position", "raw_name", "canonical_name", "column_type", "units", "display_decimals", "description")


@admin.register(Project)
class ProjectAdmin(AuditHistoryMixin, admin.ModelAdmin):
    list_display = ("project_id", "name", "coordinator", "start_date", "end_date")
    search_fields = ("project_id", "name", "description")
    inlines = [VariableInline]


@admin.register(Variable)
class VariableAdmin(AuditHistoryMixin, admin.ModelAdmin):
    list_display = ("raw_name", "canonical_name", "column_type", "units", "project")
    list_filter = ("project", "column_type")
    search_fields = ("raw_name", "canonical_name")


@admin.register(SoftSensor)
class SoftSensorAdmin(AuditHistoryMixin, admin.ModelAdmin):
    list_display = ("model_id", "name", "project", "language", "archived_at")
    list_filter = ("project", "language")
    search_fields = ("model_id", "name")
    readonly_fields = ("project", "model_id", "language", "predicted_variables", "archived_at")


class ArtifactInline(admin.TabularInline):
    model = VersionArtifact
    extra = 0
    can_delete = False
    fields = readonly_fields = (
        "role",
        "original_name",
        "path",
        "sha256",
        "size",
        "trusted_by",
        "trusted_at",
        "approved_by",
        "approved_at",
        "approved_sha256",
    )

    def has_add_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


class ModelVersionForm(forms.ModelForm):
    class Meta:
        model = ModelVersion
        fields = ("descriptor",)

    def clean_descriptor(self):
        value = self.cleaned_data["descriptor"]
        try:
            validate_config(value)
        except DescriptorError as exc:
            raise forms.ValidationError(exc.errors) from exc
        return value


@admin.register(ModelVersion)
class ModelVersionAdmin(AuditHistoryMixin, admin.ModelAdmin):
    form = ModelVersionForm
    list_display = (
        "soft_sensor",
        "number",
        "version_label",
        "flavor",
        "status",
        "created_by",
        "created_at",
        "archived_at",
    )
    list_filter = ("status", "flavor", "soft_sensor__project")
    search_fields = ("soft_sensor__model_id", "version_label")
    readonly_fields = (
        "soft_sensor",
        "number",
        "version_label",
        "flavor",
        "status",
        "status_description",
        "created_by",
        "created_at",
        "parent",
        "training_run_id",
        "training_data",
        "source",
        "first_predicted_at",
        "archived_at",
    )
    inlines = [ArtifactInline]
    actions = ["approve_pickles"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # versions come from uploads, imports and training, with their files

    @admin.action(description="Approve the pickle files (their current sha256) and put online")
    def approve_pickles(self, request: HttpRequest, queryset) -> None:
        """Approve each selected version's pickles as they are on disk now (the sha256 in the inline)."""
        for version in queryset.select_related("soft_sensor").prefetch_related("artifacts"):
            model = next((a for a in version.artifacts.all() if a.role == "model"), None)
            try:
                model_version_approve_pickle(version=version, user=request.user, sha256=model.sha256 if model else "")
            except ApplicationError as exc:
                messages.error(request, f"{version}: {exc.message}")
            else:
                messages.success(request, f"{version}: pickle approved (sha256 {model.sha256}); loaded and online.")

    def save_model(self, request: HttpRequest, obj: ModelVersion, form, change: bool) -> None:
        original = ModelVersion.objects.get(pk=obj.pk)
        try:
            model_version_update_descriptor(
                version=original, patch=form.cleaned_data["descriptor"], user=request.user, source="admin", replace=True
            )
        except ApplicationError as exc:
            messages.error(request, f"Descriptor not saved: {exc.message}")


@admin.register(Alias)
class AliasAdmin(AuditHistoryMixin, admin.ModelAdmin):
    list_display = ("soft_sensor", "name", "version", "updated_at")
    readonly_fields = ("soft_sensor", "name", "version", "updated_at")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # aliases move through the service, which records the move and its reason

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


@admin.register(AliasMove)
class AliasMoveAdmin(AuditHistoryMixin, admin.ModelAdmin):
    list_display = ("soft_sensor", "alias_name", "from_version", "to_version", "moved_by", "moved_at", "reason")
    list_filter = ("soft_sensor__project",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False  # the history of a soft sensor goes with it, never on its own


@admin.register(DescriptorRevision)
class DescriptorRevisionAdmin(AuditHistoryMixin, admin.ModelAdmin):
    list_display = ("version", "number", "source", "changed_by", "changed_at")
    list_filter = ("source",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


@admin.register(SigningPolicy)
class SigningPolicyAdmin(AuditHistoryMixin, admin.ModelAdmin):
    """Which aliases besides production need a signature, and the two-person rule, per project."""

    list_display = ("project", "signed_aliases", "two_person_rule", "updated_at")
    list_filter = ("two_person_rule",)
