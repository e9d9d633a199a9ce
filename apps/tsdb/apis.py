"""Time-series API under /api/v1/tsdb/: ingest (JSON, CSV), series, data, latest, groups, snapshots,
metadata, delete.

Reads need ``view_process``, writes ``ingest_data``, deletes ``administer``. Every bad input answers 400
with the common error body naming the field (and the point, column or CSV row); a rejected request
writes nothing.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import numpy as np
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.common.errors import ApplicationError, ValidationFailed
from apps.common.pagination import StandardPagination
from apps.common.permissions import capability

from .csv_import import TIME_UNITS_NS, CsvInvalid, wide_csv_parse
from .payloads import PayloadInvalid, points_payload_parse
from .selectors import (
    MAX_READ_POINTS,
    MAX_SNAPSHOT_ROWS,
    groups_list,
    latest_points,
    series_list,
    series_read,
    snapshots_get,
    variable_metadata_list,
)
from .services import points_delete, points_ingest, variable_dictionary_for, variable_metadata_store
from .types import Collection, Downsample, GroupKey, SeriesFilter, SeriesKey, VariableMetadata, from_ns

#: Largest CSV upload accepted by the import endpoint.
IMPORT_MAX_BYTES = 100 * 1024 * 1024
TAG_MAX = 128

CanView = capability("view_process")
CanIngest = capability("ingest_data")
CanAdminister = capability("administer")


class PayloadTooLarge(ApplicationError):
    status_code = 413
    code = "too_large"


def _iso(ns: int) -> str:
    return from_ns(int(ns)).isoformat().replace("+00:00", "Z")


def _floats(values: np.ndarray) -> list[float | None]:
    return [None if v != v else v for v in values.tolist()]


def _validated(serializer_class: type[serializers.Serializer], data: Any) -> dict[str, Any]:
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)


def _tags(key: SeriesKey) -> dict[str, str]:
    return {
        "project_name": key.project_name,
        "device_id": key.device_id,
        "batch_id": key.batch_id,
        "source": key.source,
        "observed_property": key.observed_property,
        "model_id": key.model_id,
        "version": key.version,
    }


def _group(group: GroupKey) -> dict[str, str]:
    return {"project_name": group.project_name, "device_id": group.device_id, "batch_id": group.batch_id}


def _tag_field(**kwargs: Any) -> serializers.CharField:
    return serializers.CharField(max_length=TAG_MAX, **kwargs)


class TagsSerializer(serializers.Serializer):
    class Meta:
        ref_name = "TsdbSeriesTags"

    project_name = serializers.CharField()
    device_id = serializers.CharField()
    batch_id = serializers.CharField()
    source = serializers.CharField()
    observed_property = serializers.CharField()
    model_id = serializers.CharField(allow_blank=True)
    version = serializers.CharField(allow_blank=True)


class GroupSerializer(serializers.Serializer):
    class Meta:
        ref_name = "TsdbGroupKey"

    project_name = serializers.CharField()
    device_id = serializers.CharField()
    batch_id = serializers.CharField()


class IngestResultSerializer(serializers.Serializer):
    class Meta:
        ref_name = "TsdbIngestResult"

    collection = serializers.CharField()
    points = serializers.IntegerField(help_text="Points written (duplicates in the request count once).")
    series = serializers.IntegerField()
    groups = GroupSerializer(many=True)


def _page_of(item: serializers.Serializer, name: str) -> serializers.Serializer:
    return inline_serializer(
        name=name,
        fields={
            "count": serializers.IntegerField(),
            "next": serializers.URLField(allow_null=True),
            "previous": serializers.URLField(allow_null=True),
            "results": item,
        },
    )


def _paginated(request: Request, view: APIView, rows: list[dict[str, Any]]) -> Response:
    paginator = StandardPagination()
    page = paginator.paginate_queryset(rows, request, view=view)
    return paginator.get_paginated_response(page)


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

    class InputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "TsdbCsvImportInput"

        file = serializers.FileField()
        project_name = _tag_field()
        device_id = _tag_field()
        batch_id = _tag_field()
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
        data = _validated(self.InputSerializer, request.data)
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
            "groups": [_group(group)],
        }
        return Response(self.OutputSerializer(body).data, status=status.HTTP_201_CREATED)


# --- reads ---------------------------------------------------------------------------------------
class SeriesFilterSerializer(serializers.Serializer):
    class Meta:
        ref_name = "TsdbSeriesFilter"

    collection = serializers.ChoiceField(choices=["raw", "predictions"], default="raw")
    project_name = _tag_field(required=False)
    device_id = _tag_field(required=False)
    batch_id = _tag_field(required=False)
    source = _tag_field(required=False)
    observed_property = _tag_field(required=False)
    model_id = _tag_field(required=False)
    version = _tag_field(required=False)


class SeriesListApi(APIView):
    """Series matching tag filters, with first/last time and point count."""

    permission_classes = [CanView]

    class FilterSerializer(SeriesFilterSerializer):
        class Meta:
            ref_name = "TsdbSeriesListFilter"

        start = serializers.DateTimeField(required=False, help_text="Only count points at or after this time.")
        end = serializers.DateTimeField(required=False, help_text="Only count points at or before this time.")

    class OutputSerializer(TagsSerializer):
        class Meta:
            ref_name = "TsdbSeriesListOutput"

        collection = serializers.CharField()
        first_time = serializers.DateTimeField()
        last_time = serializers.DateTimeField()
        point_count = serializers.IntegerField()

    @extend_schema(
        operation_id="tsdb_series_list",
        summary="List series",
        parameters=[FilterSerializer],
        responses=_page_of(OutputSerializer(many=True), "PaginatedTsdbSeriesList"),
    )
    def get(self, request: Request) -> Response:
        params = _validated(self.FilterSerializer, request.query_params)
        collection = Collection(params.pop("collection"))
        start, end = params.pop("start", None), params.pop("end", None)
        infos = series_list(collection=collection, where=SeriesFilter(**params), start=start, end=end)
        rows = [
            {
                **_tags(info.series),
                "collection": collection.value,
                "first_time": info.first_time,
                "last_time": info.last_time,
                "point_count": info.point_count,
            }
            for info in infos
        ]
        return _paginated(request, self, self.OutputSerializer(rows, many=True).data)


class SeriesDataApi(APIView):
    """One series over [start, end], downsampled server-side to at most ``max_points``."""

    permission_classes = [CanView]

    class FilterSerializer(serializers.Serializer):
        class Meta:
            ref_name = "TsdbSeriesDataFilter"

        collection = serializers.ChoiceField(choices=["raw", "predictions"], default="raw")
        project_name = _tag_field()
        device_id = _tag_field()
        batch_id = _tag_field()
        source = _tag_field()
        observed_property = _tag_field()
        model_id = _tag_field(required=False, allow_blank=True, default="")
        version = _tag_field(required=False, allow_blank=True, default="")
        start = serializers.DateTimeField()
        end = serializers.DateTimeField()
        max_points = serializers.IntegerField(min_value=1, max_value=MAX_READ_POINTS, default=1000)
        method = serializers.ChoiceField(choices=[m.value for m in Downsample], default=Downsample.MEAN.value)

        def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
            if attrs["end"] < attrs["start"]:
                raise serializers.ValidationError({"end": "must not be before start"})
            return attrs

    class OutputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "TsdbSeriesDataOutput"

        series = TagsSerializer()
        collection = serializers.CharField()
        start = serializers.DateTimeField()
        end = serializers.DateTimeField()
        downsampled = serializers.CharField(allow_null=True, help_text="The method used, or null when not reduced.")
        total_points = serializers.IntegerField(help_text="Points stored in the range before reduction.")
        times = serializers.ListField(child=serializers.DateTimeField())
        values = serializers.ListField(child=serializers.FloatField())
        fields = serializers.DictField(
            child=serializers.ListField(child=serializers.JSONField()),
            help_text="mean: min, max, count per bucket; predictions: validity, corrected_value.",
        )

    @extend_schema(
        operation_id="tsdb_series_data",
        summary="Read one series",
        parameters=[FilterSerializer],
        responses=OutputSerializer,
    )
    def get(self, request: Request) -> Response:
        p = _validated(self.FilterSerializer, request.query_params)
        key = SeriesKey(
            p["project_name"],
            p["device_id"],
            p["batch_id"],
            p["source"],
            p["observed_property"],
            p["model_id"],
            p["version"],
        )
        data = series_read(
            collection=Collection(p["collection"]),
            series=key,
            start=p["start"],
            end=p["end"],
            max_points=p["max_points"],
            method=Downsample(p["method"]),
        )
        fields: dict[str, list[Any]] = {}
        for name, arr in data.fields.items():
            fields[name] = _floats(arr) if arr.dtype.kind == "f" else arr.tolist()
        body = {
            "series": _tags(key),
            "collection": p["collection"],
            "start": p["start"].isoformat(),
            "end": p["end"].isoformat(),
            "downsampled": data.downsampled,
            "total_points": data.total_points if data.total_points is not None else len(data),
            "times": [_iso(t) for t in data.times_ns.tolist()],
            "values": _floats(data.values),
            "fields": fields,
        }
        return Response(body)


class LatestPointsApi(APIView):
    """The newest point of every series matching the filters (for live tiles)."""

    permission_classes = [CanView]

    class OutputSerializer(TagsSerializer):
        class Meta:
            ref_name = "TsdbLatestPointsOutput"

        time = serializers.DateTimeField()
        value = serializers.FloatField()
        fields = serializers.DictField(child=serializers.JSONField())

    @extend_schema(
        operation_id="tsdb_latest",
        summary="Latest point per series",
        parameters=[SeriesFilterSerializer],
        responses=_page_of(OutputSerializer(many=True), "PaginatedTsdbLatestList"),
    )
    def get(self, request: Request) -> Response:
        params = _validated(SeriesFilterSerializer, request.query_params)
        collection = Collection(params.pop("collection"))
        if not params.get("project_name"):
            raise ValidationFailed("project_name is required", details={"project_name": "required"})
        points = latest_points(collection=collection, where=SeriesFilter(**params))
        rows = [
            {
                **_tags(p.series),
                "time": p.time,
                "value": p.value,
                "fields": {k: (None if isinstance(v, float) and v != v else v) for k, v in p.fields.items()},
            }
            for p in points
        ]
        return _paginated(request, self, self.OutputSerializer(rows, many=True).data)


class GroupListApi(APIView):
    """(project, device, batch) groups, most recent first: "batch_91 — last data 5 minutes ago"."""

    permission_classes = [CanView]

    class FilterSerializer(serializers.Serializer):
        class Meta:
            ref_name = "TsdbGroupListFilter"

        collection = serializers.ChoiceField(choices=["raw", "predictions"], default="raw")
        project_name = _tag_field(required=False)
        device_id = _tag_field(required=False)
        since = serializers.DateTimeField(required=False, help_text="Only groups with data at or after this time.")

    class OutputSerializer(GroupSerializer):
        class Meta:
            ref_name = "TsdbGroupListOutput"

        first_time = serializers.DateTimeField()
        last_time = serializers.DateTimeField()
        point_count = serializers.IntegerField()
        variables = serializers.ListField(child=serializers.CharField())

    @extend_schema(
        operation_id="tsdb_groups_list",
        summary="List groups (batches)",
        parameters=[FilterSerializer],
        responses=_page_of(OutputSerializer(many=True), "PaginatedTsdbGroupList"),
    )
    def get(self, request: Request) -> Response:
        p = _validated(self.FilterSerializer, request.query_params)
        groups = groups_list(
            collection=Collection(p["collection"]),
            project_name=p.get("project_name"),
            device_id=p.get("device_id"),
            since=p.get("since"),
        )
        rows = [
            {
                **_group(g.group),
                "first_time": g.first_time,
                "last_time": g.last_time,
                "point_count": g.point_count,
                "variables": list(g.variables),
            }
            for g in groups
        ]
        return _paginated(request, self, self.OutputSerializer(rows, many=True).data)


class SnapshotListApi(APIView):
    """As-of snapshots of a group's variables after a watermark; incomplete rows carry the reason."""

    permission_classes = [CanView]

    class FilterSerializer(serializers.Serializer):
        class Meta:
            ref_name = "TsdbSnapshotListFilter"

        project_name = _tag_field()
        device_id = _tag_field()
        batch_id = _tag_field()
        variables = serializers.CharField(help_text="Comma-separated observed properties, in model input order.")
        after = serializers.DateTimeField(required=False, help_text="Watermark: rows strictly after this time.")
        until = serializers.DateTimeField(required=False)
        max_age = serializers.FloatField(min_value=0, help_text="Seconds an input value stays fresh.")
        limit = serializers.IntegerField(min_value=1, max_value=MAX_SNAPSHOT_ROWS, default=1000)

        def validate_variables(self, value: str) -> list[str]:
            names = [v.strip() for v in value.split(",") if v.strip()]
            if not names:
                raise serializers.ValidationError("name at least one variable")
            if len(set(names)) != len(names):
                raise serializers.ValidationError("a variable is repeated")
            return names

    class OutputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "TsdbSnapshotListOutput"

        group = GroupSerializer()
        variables = serializers.ListField(child=serializers.CharField())
        rows = inline_serializer(
            name="TsdbSnapshotRow",
            many=True,
            fields={
                "time": serializers.DateTimeField(),
                "values": serializers.ListField(child=serializers.FloatField(allow_null=True)),
                "complete": serializers.BooleanField(),
                "reason": serializers.CharField(allow_null=True),
            },
        )

    @extend_schema(
        operation_id="tsdb_snapshots",
        summary="As-of snapshots",
        parameters=[FilterSerializer],
        responses=OutputSerializer,
    )
    def get(self, request: Request) -> Response:
        p = _validated(self.FilterSerializer, request.query_params)
        group = GroupKey(p["project_name"], p["device_id"], p["batch_id"])
        snaps = snapshots_get(
            group=group,
            variables=tuple(p["variables"]),
            after=p.get("after"),
            until=p.get("until"),
            max_age=timedelta(seconds=p["max_age"]),
            limit=p["limit"],
        )
        rows = [
            {
                "time": _iso(t),
                "values": _floats(snaps.matrix[i]),
                "complete": bool(snaps.complete[i]),
                "reason": snaps.reasons[i],
            }
            for i, t in enumerate(snaps.times_ns.tolist())
        ]
        return Response({"group": _group(group), "variables": list(snaps.variables), "rows": rows})


# --- metadata ------------------------------------------------------------------------------------
class MetadataSerializer(serializers.Serializer):
    class Meta:
        ref_name = "TsdbVariableMetadata"

    project_name = _tag_field()
    device_id = _tag_field()
    observed_property = _tag_field()
    unit = serializers.CharField(max_length=64, allow_blank=True, default="")
    display_name = serializers.CharField(max_length=200, allow_blank=True, default="")
    decimals = serializers.IntegerField(min_value=0, max_value=15, default=2)


class MetadataListApi(APIView):
    """Display metadata (unit, display name, decimals) of a project's variables."""

    permission_classes = [CanView]

    class FilterSerializer(serializers.Serializer):
        class Meta:
            ref_name = "TsdbMetadataListFilter"

        project_name = _tag_field()
        device_id = _tag_field(required=False)

    @extend_schema(
        operation_id="tsdb_metadata_list",
        summary="Variable metadata",
        parameters=[FilterSerializer],
        responses=MetadataSerializer(many=True),
    )
    def get(self, request: Request) -> Response:
        p = _validated(self.FilterSerializer, request.query_params)
        items = variable_metadata_list(project_name=p["project_name"], device_id=p.get("device_id"))
        return Response(MetadataSerializer([_meta(m) for m in items], many=True).data)


def _meta(m: VariableMetadata) -> dict[str, Any]:
    return {
        "project_name": m.project_name,
        "device_id": m.device_id,
        "observed_property": m.observed_property,
        "unit": m.unit,
        "display_name": m.display_name,
        "decimals": m.decimals,
    }


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
        data = _validated(self.InputSerializer, request.data)
        stored = variable_metadata_store(items=[VariableMetadata(**item) for item in data["items"]])
        return Response({"stored": stored})


# --- delete --------------------------------------------------------------------------------------
class PointsDeleteApi(APIView):
    """Delete a batch's points, or those in [start, end] (administrators only)."""

    permission_classes = [CanAdminister]

    class FilterSerializer(serializers.Serializer):
        class Meta:
            ref_name = "TsdbPointsDeleteFilter"

        collection = serializers.ChoiceField(choices=["raw", "predictions"], default="raw")
        project_name = _tag_field()
        device_id = _tag_field()
        batch_id = _tag_field()
        start = serializers.DateTimeField(required=False)
        end = serializers.DateTimeField(required=False)

        def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
            if "start" in attrs and "end" in attrs and attrs["end"] < attrs["start"]:
                raise serializers.ValidationError({"end": "must not be before start"})
            return attrs

    @extend_schema(
        operation_id="tsdb_points_delete",
        summary="Delete a batch or a time range",
        parameters=[FilterSerializer],
        responses={200: inline_serializer(name="TsdbDeleted", fields={"deleted": serializers.IntegerField()})},
    )
    def delete(self, request: Request) -> Response:
        p = _validated(self.FilterSerializer, request.query_params)
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
