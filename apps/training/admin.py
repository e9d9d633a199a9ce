"""Admin: project profiles are edited here; runs, candidates and bias corrections are read-only records."""

from django.contrib import admin

from .models import BiasCorrection, Candidate, ProjectProfile, TrainingRun, TrainingStep


@admin.register(ProjectProfile)
class ProjectProfileAdmin(admin.ModelAdmin):
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
class TrainingRunAdmin(admin.ModelAdmin):
    list_display = ("id", "project", "model_id", "target", "status", "created_by", "created_at")
    list_filter = ("status", "project")
    search_fields = ("model_id", "target", "uid")
    readonly_fields = [f.name for f in TrainingRun._meta.fields]
    inlines = [StepInline, CandidateInline]

    def has_add_permission(self, request) -> bool:
        return False


@admin.register(BiasCorrection)
class BiasCorrectionAdmin(admin.ModelAdmin):
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
