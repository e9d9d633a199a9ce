"""Admin: project profiles are edited here; runs, candidates and bias corrections are read-only records."""

from django import forms
from django.contrib import admin

from apps.audit.admin import AuditHistoryMixin
from apps.common.errors import ApplicationError

from .models import Candidate, ProjectProfile, PromotionRequest, TrainingPlan, TrainingRun, TrainingStep


@admin.register(ProjectProfile)
class ProjectProfileAdmin(AuditHistoryMixin, admin.ModelAdmin):
    list_display = ("project", "lab_delay_seconds", "updated_at")
    search_fields = ("project__project_id", "project__name")


class ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


class StepInline(ReadOnlyInline):
    model = TrainingStep
    fields = ("name", "status", "attempts", "duration_ms", "error")


class CandidateInline(ReadOnlyInline):
    model = Candidate
    fields = ("learner", "status", "passed", "version", "error")


@admin.register(TrainingRun)
class TrainingRunAdmin(AuditHistoryMixin, admin.ModelAdmin):
    list_display = ("id", "project", "model_id", "target", "status", "trigger", "plan", "created_by", "created_at")
    list_filter = ("status", "trigger", "project")
    search_fields = ("model_id", "target", "uid")
    readonly_fields = [f.name for f in TrainingRun._meta.fields]
    inlines = [StepInline, CandidateInline]

    def has_add_permission(self, request) -> bool:
        return False


class TrainingPlanForm(forms.ModelForm):
    """Runs the service's rules in ``clean``, so a bad plan is a form error naming its field."""

    class Meta:
        model = TrainingPlan
        exclude = ("created_by", "trigger_state")

    def clean(self) -> dict:
        cleaned = super().clean()
        if self.errors:
            return cleaned
        from .services import PLAN_FIELDS
        from .services.plans import training_plan_validate

        candidate = TrainingPlan(pk=self.instance.pk, **{k: cleaned.get(k) for k in PLAN_FIELDS if k in cleaned})
        candidate.config = candidate.config if candidate.config is not None else {}
        try:
            training_plan_validate(candidate)
        except ApplicationError as exc:
            details = exc.details if isinstance(exc.details, dict) else {}
            for field, message in details.items():
                self.add_error(field if field in self.fields else None, str(message))
            if not details:
                raise forms.ValidationError(exc.message) from exc
        return cleaned


@admin.register(TrainingPlan)
class TrainingPlanAdmin(AuditHistoryMixin, admin.ModelAdmin):
    """Plans are validated by the same service as the API; the schedule becomes a beat entry (Periodic tasks)."""

    form = TrainingPlanForm

    list_display = ("name", "project", "schedule", "deployment", "on_drift_alert", "lab_error_threshold", "enabled")
    list_filter = ("enabled", "on_drift_alert", "project")
    search_fields = ("name", "description")
    readonly_fields = ("periodic_task", "trigger_state", "created_by", "created_at", "updated_at")
    raw_id_fields = ("deployment",)

    def save_model(self, request, obj, form, change) -> None:  # noqa: ANN001 - Django's signature
        from .services import PLAN_FIELDS, training_plan_create, training_plan_update

        data = {name: getattr(obj, name) for name in PLAN_FIELDS}
        if change:
            training_plan_update(plan=TrainingPlan.objects.get(pk=obj.pk), data=data)
        else:
            created = training_plan_create(user=request.user, **data)
            obj.pk, obj.created_at = created.pk, created.created_at

    def delete_model(self, request, obj) -> None:  # noqa: ANN001
        from .services import training_plan_delete

        training_plan_delete(plan=obj)


@admin.register(PromotionRequest)
class PromotionRequestAdmin(AuditHistoryMixin, admin.ModelAdmin):
    """Read only: requests are approved (with a signature) or dismissed on the champion/challenger page or API."""

    list_display = ("created_at", "soft_sensor", "alias", "version", "challenger", "status", "decided_by")
    list_filter = ("status",)
    readonly_fields = [f.name for f in PromotionRequest._meta.fields]

    def has_add_permission(self, request) -> bool:  # noqa: ANN001
        return False

    def has_change_permission(self, request, obj=None) -> bool:  # noqa: ANN001
        return False
