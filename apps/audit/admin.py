"""Admin: the trail and the signatures are read only (no add, change or delete, not even for superusers);
``AuditHistoryMixin`` makes every audited model's "History" page show its audit trail."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.template.response import TemplateResponse

from . import selectors
from .models import AuditEntry, Signature


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_actions(self, request: HttpRequest) -> dict:
        return {}


if admin.site.is_registered(AuditEntry):  # django-auditlog registers its own (editable) admin for the model
    admin.site.unregister(AuditEntry)


@admin.register(AuditEntry)
class AuditEntryAdmin(ReadOnlyAdmin):
    list_display = ("timestamp", "content_type", "object_repr", "action", "actor_username", "via", "remote_addr")
    list_filter = ("action", "via", "content_type")
    search_fields = ("object_repr", "object_pk", "actor_username")
    date_hierarchy = "timestamp"
    readonly_fields = [f.name for f in AuditEntry._meta.fields]


@admin.register(Signature)
class SignatureAdmin(ReadOnlyAdmin):
    list_display = ("signed_at", "outcome", "signer_username", "meaning", "action", "subject_repr")
    list_filter = ("outcome", "meaning")
    search_fields = ("signer_username", "subject_repr", "reason", "action")
    readonly_fields = [f.name for f in Signature._meta.fields]


class AuditHistoryMixin:
    """The object's "History" page in the admin shows its audit trail (before → after, who, when, from where)."""

    def history_view(self, request: HttpRequest, object_id: str, extra_context: dict | None = None) -> HttpResponse:
        model = self.model  # type: ignore[attr-defined]
        obj = self.get_object(request, unquote(object_id))  # type: ignore[attr-defined]
        if obj is None:
            raise Http404(f"{model._meta.verbose_name} {object_id} does not exist")
        if not self.has_view_or_change_permission(request, obj):  # type: ignore[attr-defined]
            raise PermissionDenied
        rows = [{"entry": e, "action": selectors.ACTION_NAMES.get(e.action, e.action),
                 "changes": selectors.change_rows(e)} for e in selectors.entries_for(obj)[:500]]
        context = {
            **self.admin_site.each_context(request),  # type: ignore[attr-defined]
            "title": f"History: {obj}",
            "subtitle": None,
            "module_name": str(model._meta.verbose_name_plural).capitalize(),
            "object": obj,
            "opts": model._meta,
            "rows": rows,
            **(extra_context or {}),
        }
        request.current_app = self.admin_site.name  # type: ignore[attr-defined]
        return TemplateResponse(request, "audit/admin_history.html", context)
