"""Admin of the tsdb app: series (read-only identities) and variable metadata (curated by administrators).

Points are not in the admin: there are millions, their key is composite, and they are read and deleted
through the API and the services, which work in bulk.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from .models import Series, VariableMetadata
from .types import SERIES_TAGS


@admin.register(Series)
class SeriesAdmin(admin.ModelAdmin):
    list_display = ("collection", *SERIES_TAGS)
    list_filter = ("collection", "source", "project_name", "device_id")
    search_fields = ("project_name", "device_id", "batch_id", "observed_property", "model_id")
    ordering = ("collection", "project_name", "device_id", "batch_id", "source", "observed_property")
    list_per_page = 100
    show_full_result_count = False

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # series appear when points are written

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # a series' tags are its identity

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # delete a batch or range through the API, which removes the points first


@admin.register(VariableMetadata)
class VariableMetadataAdmin(admin.ModelAdmin):
    list_display = ("project_name", "device_id", "observed_property", "display_name", "unit", "decimals")
    list_filter = ("project_name", "device_id")
    list_editable = ("display_name", "unit", "decimals")
    search_fields = ("observed_property", "display_name")
    ordering = ("project_name", "device_id", "observed_property")
