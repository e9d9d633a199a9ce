"""API routes of the audit trail, mounted under /api/v1/audit/."""

from django.urls import path

from . import apis

urlpatterns = [
    path("entries/", apis.AuditEntryListApi.as_view(), name="audit-entry-list"),
    path("entries/export/", apis.AuditEntryExportApi.as_view(), name="audit-entry-export"),
    path("signatures/", apis.SignatureListApi.as_view(), name="audit-signature-list"),
    path("signatures/export/", apis.SignatureExportApi.as_view(), name="audit-signature-export"),
]
