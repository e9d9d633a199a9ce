"""REST API of the audit trail under /api/v1/audit/ (read only: nobody writes the trail through an API).

Everything needs the ``view_audit`` capability (modelers, managers, administrators). The list operations
are paginated; the export operations stream the same filtered rows as CSV.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.common.pagination import page_serializer, paginated_response
from apps.common.permissions import capability

from . import selectors
from .exports import csv_response
from .models import AuditEntry

CanViewAudit = capability("view_audit")


class ChangeOutput(serializers.Serializer):
    field = serializers.CharField()
    before = serializers.JSONField(allow_null=True)
    after = serializers.JSONField(allow_null=True)


class EntryOutput(serializers.Serializer):
    id = serializers.IntegerField()
    timestamp = serializers.DateTimeField()
    action = serializers.SerializerMethodField()
    model = serializers.SerializerMethodField()
    object_id = serializers.CharField(source="object_pk")
    object = serializers.CharField(source="object_repr")
    actor = serializers.CharField(source="actor_username")
    via = serializers.CharField()
    remote_addr = serializers.CharField(allow_null=True)
    changes = serializers.SerializerMethodField()

    def get_action(self, entry: AuditEntry) -> str:
        return selectors.ACTION_NAMES.get(entry.action, str(entry.action))

    def get_model(self, entry: AuditEntry) -> str:
        return f"{entry.content_type.app_label}.{entry.content_type.model}"

    @extend_schema_field(ChangeOutput(many=True))
    def get_changes(self, entry: AuditEntry) -> list[dict[str, Any]]:
        return selectors.change_rows(entry)


class SignatureOutput(serializers.Serializer):
    id = serializers.IntegerField()
    signed_at = serializers.DateTimeField()
    outcome = serializers.CharField()
    signer = serializers.CharField(source="signer_username")
    signer_name = serializers.CharField()
    meaning = serializers.CharField()
    reason = serializers.CharField()
    action = serializers.CharField()
    subject_type = serializers.CharField()
    subject_id = serializers.CharField()
    subject = serializers.CharField(source="subject_repr")
    subject_sha256 = serializers.CharField()
    refusal = serializers.CharField()
    via = serializers.CharField()
    remote_addr = serializers.CharField(allow_null=True)


class EntryFilter(serializers.Serializer):
    model = serializers.CharField(required=False, help_text="app_label.model, e.g. registry.alias")
    object_id = serializers.CharField(required=False)
    actor = serializers.CharField(required=False)
    action = serializers.ChoiceField(choices=list(selectors.ACTIONS), required=False)
    via = serializers.ChoiceField(choices=list(selectors.CHANNELS), required=False)
    since = serializers.DateTimeField(required=False)
    until = serializers.DateTimeField(required=False)


class SignatureFilter(serializers.Serializer):
    subject_type = serializers.CharField(required=False, help_text="app_label.model, e.g. registry.modelversion")
    subject_id = serializers.CharField(required=False)
    signer = serializers.CharField(required=False)
    outcome = serializers.ChoiceField(choices=["accepted", "refused"], required=False)
    since = serializers.DateTimeField(required=False)
    until = serializers.DateTimeField(required=False)


ENTRY_PARAMETERS = [
    OpenApiParameter("model", str, description="app_label.model of an audited model"),
    OpenApiParameter("object_id", str, description="the object's primary key (with model)"),
    OpenApiParameter("actor", str, description="username"),
    OpenApiParameter("action", str, enum=list(selectors.ACTIONS)),
    OpenApiParameter("via", str, enum=list(selectors.CHANNELS)),
    OpenApiParameter("since", OpenApiTypes.DATETIME),
    OpenApiParameter("until", OpenApiTypes.DATETIME),
]
SIGNATURE_PARAMETERS = [
    OpenApiParameter("subject_type", str, description="app_label.model of the signed record"),
    OpenApiParameter("subject_id", str),
    OpenApiParameter("signer", str, description="username"),
    OpenApiParameter("outcome", str, enum=["accepted", "refused"]),
    OpenApiParameter("since", OpenApiTypes.DATETIME),
    OpenApiParameter("until", OpenApiTypes.DATETIME),
]


def _filters(serializer_class: type[serializers.Serializer], request: Request) -> dict[str, Any]:
    serializer = serializer_class(data=request.query_params)
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)


class AuditEntryListApi(APIView):
    """The trail, newest first: who changed which object, when, from where, each field before → after."""

    permission_classes = [CanViewAudit]

    @extend_schema(
        operation_id="audit_entry_list",
        parameters=ENTRY_PARAMETERS,
        responses=page_serializer(EntryOutput(many=True), "PaginatedAuditEntryList"),
    )
    def get(self, request: Request) -> Response:
        entries = selectors.entry_list(**_filters(EntryFilter, request))
        return paginated_response(request, self, entries, EntryOutput)


class AuditEntryExportApi(APIView):
    """The same rows as CSV: one line per changed field (streamed)."""

    permission_classes = [CanViewAudit]

    @extend_schema(operation_id="audit_entry_export", parameters=ENTRY_PARAMETERS,
                   responses={(200, "text/csv"): OpenApiTypes.STR})
    def get(self, request: Request) -> Any:
        entries = selectors.entry_list(**_filters(EntryFilter, request))
        return csv_response(filename="audit-trail.csv", columns=selectors.ENTRY_COLUMNS,
                            rows=selectors.entry_csv_rows(entries))


class SignatureListApi(APIView):
    """Electronic signatures and refused attempts, newest first."""

    permission_classes = [CanViewAudit]

    @extend_schema(operation_id="audit_signature_list", parameters=SIGNATURE_PARAMETERS,
                   responses=page_serializer(SignatureOutput(many=True), "PaginatedSignatureList"))
    def get(self, request: Request) -> Response:
        return paginated_response(request, self, selectors.signature_list(**_filters(SignatureFilter, request)),
                          SignatureOutput)


class SignatureExportApi(APIView):
    permission_classes = [CanViewAudit]

    @extend_schema(operation_id="audit_signature_export", parameters=SIGNATURE_PARAMETERS,
                   responses={(200, "text/csv"): OpenApiTypes.STR})
    def get(self, request: Request) -> Any:
        signatures = selectors.signature_list(**_filters(SignatureFilter, request))
        return csv_response(filename="signatures.csv", columns=selectors.SIGNATURE_COLUMNS,
                            rows=selectors.signature_csv_rows(signatures))
