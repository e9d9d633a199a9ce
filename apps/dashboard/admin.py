"""Admin of the dashboard app: flagged points, for curation by administrators."""

from django.contrib import admin

from apps.audit.admin import AuditHistoryMixin

from .models import PointFlag


@admin.register(PointFlag)
class PointFlagAdmin(AuditHistoryMixin, admin.ModelAdmin):
    list_display = (
        "time",
        "level",
        "type",
        "project_name",
        "device_id",
        "batch_id",
        "observed_property",
        "value",
        "created_by",
    )
    list_filter = ("level", "type", "project_name", "device_id")
    search_fields = ("batch_id", "observed_property", "description")
    date_hierarchy = "time"
    raw_id_fields = ("created_by",)
