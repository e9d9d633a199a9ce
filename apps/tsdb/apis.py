"""Time-series API writes under /api/v1/tsdb/: ingest (JSON, CSV), metadata, delete (reads: ``read_apis``).

Writes need ``ingest_data``, deletes ``administer``. Every bad input answers 400 with the common error body
naming the field (and the point, column or CSV row); a rejected request writes nothing.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.common.dictionaries import variable_dictionary_for
from apps.common.errors import ValidationFailed
from apps.common.parsers import FormParser, JSONParser, MultiPartParser

from .api_fields import (
    IMPORT_MAX_BYTES,
    CanAdminister,
    CanIngest,
    CanView,
    GroupSerializer,
    IngestResultSerializer,
    MetadataSerializer,
    PayloadTooLarge,
    collection_field,
    end_not_before_start,
    group_tags,
    tag_field,
    validated,
)
from .csv_import import TIME_UNITS_NS, CsvInvalid, wide_csv_parse
from .payloads import PayloadInvalid, points_payload_parse
from .read_apis import MetadataListApi
from .services import points_delete, points_ingest, variable_metadata_store
from .types import (
    Collection,
    GroupKey,
    VariableMetadata,
    from_ns,
)


# --- ingest --------------------------------------------------------------------------------------
class PointsIngestApi(APIView):
    """Write raw points or predictions as JSON, in row form (``points``) or columnar form (``columns``)."""

    permission_classes = [CanIngest]
    parser_classes = [JSONParser]

    @extend_schema(
        operation_id="tsdb_points_ingest",
        summary="Write points (JSON row or columnar form)",
        description=(
            "Atomic: any invalid point rejects the whole request with 400 and nothing is written. Duplicate "
            "(series, time) points keep the last value. Times: ISO 8601 with a zone, or integers with "
            "`precision` (ns, us, ms, s). Tags at the top level are defaults for every point/column."
        ),
        request=OpenApiTypes.OBJECT,
        responses={201: IngestResultSerializer},
        examples=[
            OpenApiExample(
                "Row form",
                request_only=True,
                value={
                    "collection": "raw",
                    "project_name": "penicillin",
                    "device_id": "R1",
                    "batch_id": "batch_91",
                    "points": [
                        {
                            "source": "sensor",
                            "observed_property": "temperature",
                            "time": "2026-01-01T00:00:00Z",
                            "value": 298.2,
                        }
                    ],
                },
            ),
            OpenApiExample(
                "Columnar form",
                request_only=True,
                value={
                    "collection": "raw",
                    "project_name": "penicillin",
                    "device_id": "R1",
                    "batch_id": "batch_91",
                    "times": ["2026-01-01T00:00:00Z", "2026-01-01T00:00:20Z"],
                    "columns": [{"source": "sensor", "observed_property": "temperature", "values": [298.2, None]}],
                },
            ),
        ],
    )
    def post(self, request: Request) -> Response:
        try:
            batch = points_payload_parse(request.data)
        except PayloadInvalid as exc:
            raise ValidationFailed(f"Rejected, nothing written: {exc}", details=exc.problems) from exc
        result = points_ingest(batch=batch, user=request.user)
        return Response(IngestResultSerializer(result.as_dict()).data, status=status.HTTP_201_CREATED)


class CsvImportApi(APIView):
    """Import an IndPenSim-style wide CSV for one batch (see ``apps.tsdb.csv_import`` for the mapping)."""

    permission_classes = [CanIngest]
    parser_classes = [MultiPartParser, FormParser]
    #: The file plus the form fields and multipart framing; a larger request is refused unread (413).
    max_upload_bytes = IMPORT_MAX_BYTES + 1024 * 1024

    class InputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "TsdbCsvImportInput"

        file = serializers.FileField()
        project_name = tag_field()
        device_id = tag_field()
        batch_id = tag_field()
        start = serializers.DateTimeField(
            required=False, help_text="Batch start (time 0) when the time column holds offsets; UTC if no zone."
        )
        time_unit = serializers.ChoiceField(choices=list(TIME_UNITS_NS), default="h")

    class OutputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "TsdbCsvImportOutput"

        rows = serializers.IntegerField()
        points = serializers.IntegerField()
        empty_cells = serializers.IntegerField()
        first_time = serializers.DateTimeField()
        last_time = serializers.DateTimeField()
        columns = inline_serializer(
            name="CsvImportColumn",
            many=True,
            fields={
                "column": serializers.CharField(),
                "observed_property": serializers.CharField(),
                "source": serializers.CharField(),
                "mapped_by": serializers.CharField(),
            },
        )
        skipped = inline_serializer(
            name="CsvImportSkipped",
            many=True,
            fields={"column": serializers.CharField(), "reason": serializers.CharField()},
        )
        groups = GroupSerializer(many=True)

    @extend_schema(
        operation_id="tsdb_csv_import",
        summary="Import a wide CSV (IndPenSim format)",
        request={"multipart/form-data": InputSerializer},
        responses={201: OutputSerializer},
    )
    def post(self, request: Request) -> Response:
        data = validated(self.InputSerializer, request.data)
        upload = data["file"]
        if upload.size > IMPORT_MAX_BYTES:
            raise PayloadTooLarge(
                f"The file is {upload.size} bytes; the limit is {IMPORT_MAX_BYTES}.", details={"file": upload.size}
            )
        dictionary = variable_dictionary_for(project_name=data["project_name"])
        try:
            table = wide_csv_parse(upload, time_unit=data["time_unit"], dictionary=dictionary)
            times = table.absolute_times(data.get("start"))
        except CsvInvalid as exc:
            raise ValidationFailed(f"Rejected, nothing written: {exc}", details=exc.problems) from exc
        group = GroupKey(data["project_name"], data["device_id"], data["batch_id"])
        batch = table.to_batch(group=group, times_ns=times)
        result = points_ingest(batch=batch, user=request.user)
        body = {
            "rows": len(table),
            "points": result.points,
            "empty_cells": table.empty_cells,
            "first_time": from_ns(int(times.min())),
            "last_time": from_ns(int(times.max())),
            "columns": [
                {
                    "column": c.column,
                    "observed_property": c.observed_property,
                    "source": c.source,
                    "mapped_by": c.mapped_by,
                }
                for c in table.columns
            ],
            "skipped": [{"column": s.column, "reason": s.reason} for s in table.skipped],
            "groups": [group_tags(group)],
        }
        return Response(self.OutputSerializer(body).data, status=status.HTTP_201_CREATED)


class MetadataStoreApi(APIView):
    """Upsert display metadata per (project, device, variable)."""

    permission_classes = [CanIngest]
    parser_classes = [JSONParser]

    class InputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "TsdbMetadataStoreInput"

        items = MetadataSerializer(many=True, allow_empty=False)

    @extend_schema(
        operation_id="tsdb_metadata_store",
        summary="Store variable metadata",
        request=InputSerializer,
        responses={200: inline_serializer(name="TsdbMetadataStored", fields={"stored": serializers.IntegerField()})},
    )
    def put(self, request: Request) -> Response:
        data = validated(self.InputSerializer, request.data)
        stored = variable_metadata_store(items=[VariableMetadata(**item) for item in data["items"]])
        return Response({"stored": stored})


# --- delete --------------------------------------------------------------------------------------
class PointsDeleteApi(APIView):
    """Delete a batch's points, or those in [start, end] (administrators only)."""

    permission_classes = [CanAdminister]

    class FilterSerializer(serializers.Serializer):
        class Meta:
            ref_name = "TsdbPointsDeleteFilter"

        collection = collection_field()
        project_name = tag_field()
        device_id = tag_field()
        batch_id = tag_field()
        start = serializers.DateTimeField(required=False)
        end = serializers.DateTimeField(required=False)

        def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
            return end_not_before_start(attrs)

    @extend_schema(
        operation_id="tsdb_points_delete",
        summary="Delete a batch or a time range",
        parameters=[FilterSerializer],
        responses={200: inline_serializer(name="TsdbDeleted", fields={"deleted": serializers.IntegerField()})},
    )
    def delete(self, request: Request) -> Response:
        p = validated(self.FilterSerializer, request.query_params)
        deleted = points_delete(
            collection=Collection(p["collection"]),
            group=GroupKey(p["project_name"], p["device_id"], p["batch_id"]),
            start=p.get("start"),
            end=p.get("end"),
        )
        return Response({"deleted": deleted})


class PointsApi(PointsIngestApi, PointsDeleteApi):
    """``/points``: POST writes (ingest_data), DELETE removes (administer); the permission follows the method."""

    parser_classes = [JSONParser]

    def get_permissions(self) -> list[Any]:
        return [CanAdminister()] if self.request.method == "DELETE" else [CanIngest()]


class MetadataApi(MetadataListApi, MetadataStoreApi):
    """``/metadata``: GET reads (view_process), PUT upserts (ingest_data)."""

    parser_classes = [JSONParser]

    def get_permissions(self) -> list[Any]:
        return [CanIngest()] if self.request.method == "PUT" else [CanView()]
