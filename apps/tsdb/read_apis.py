"""Time-series API reads under /api/v1/tsdb/: series, data, latest, groups, snapshots, metadata.

Reads need ``view_process``. Every bad filter answers 400 naming the field; reads are bounded (a time
range and a point limit, never the whole history).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.common.errors import ValidationFailed
from apps.common.pagination import page_serializer, paginated_response

from .api_fields import (
    MAX_SNAPSHOT_AGE_SECONDS,
    CanView,
    GroupSerializer,
    MetadataSerializer,
    TagsSerializer,
    collection_field,
    end_not_before_start,
    floats_or_none,
    group_tags,
    iso_time,
    series_tags,
    tag_field,
    validated,
)
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
from .types import (
    Collection,
    Downsample,
    GroupKey,
    SeriesFilter,
    SeriesKey,
    VariableMetadata,
)


# --- reads ---------------------------------------------------------------------------------------
class SeriesFilterSerializer(serializers.Serializer):
    class Meta:
        ref_name = "TsdbSeriesFilter"

    collection = collection_field()
    project_name = tag_field(required=False)
    device_id = tag_field(required=False)
    batch_id = tag_field(required=False)
    source = tag_field(required=False)
    observed_property = tag_field(required=False)
    model_id = tag_field(required=False)
    version = tag_field(required=False)


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
        responses=page_serializer(OutputSerializer(many=True), "PaginatedTsdbSeriesList"),
    )
    def get(self, request: Request) -> Response:
        params = validated(self.FilterSerializer, request.query_params)
        collection = Collection(params.pop("collection"))
        start, end = params.pop("start", None), params.pop("end", None)
        infos = series_list(collection=collection, where=SeriesFilter(**params), start=start, end=end)
        rows = [
            {
                **series_tags(info.series),
                "collection": collection.value,
                "first_time": info.first_time,
                "last_time": info.last_time,
                "point_count": info.point_count,
            }
            for info in infos
        ]
        return paginated_response(request, self, self.OutputSerializer(rows, many=True).data)


class SeriesDataApi(APIView):
    """One series over [start, end], downsampled server-side to at most ``max_points``."""

    permission_classes = [CanView]

    class FilterSerializer(serializers.Serializer):
        class Meta:
            ref_name = "TsdbSeriesDataFilter"

        collection = collection_field()
        project_name = tag_field()
        device_id = tag_field()
        batch_id = tag_field()
        source = tag_field()
        observed_property = tag_field()
        model_id = tag_field(required=False, allow_blank=True, default="")
        version = tag_field(required=False, allow_blank=True, default="")
        start = serializers.DateTimeField()
        end = serializers.DateTimeField()
        max_points = serializers.IntegerField(min_value=1, max_value=MAX_READ_POINTS, default=1000)
        method = serializers.ChoiceField(choices=[m.value for m in Downsample], default=Downsample.MEAN.value)

        def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
            return end_not_before_start(attrs)

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
        p = validated(self.FilterSerializer, request.query_params)
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
            fields[name] = floats_or_none(arr) if arr.dtype.kind == "f" else arr.tolist()
        body = {
            "series": series_tags(key),
            "collection": p["collection"],
            "start": p["start"].isoformat(),
            "end": p["end"].isoformat(),
            "downsampled": data.downsampled,
            "total_points": data.total_points if data.total_points is not None else len(data),
            "times": [iso_time(t) for t in data.times_ns.tolist()],
            "values": floats_or_none(data.values),
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
        responses=page_serializer(OutputSerializer(many=True), "PaginatedTsdbLatestList"),
    )
    def get(self, request: Request) -> Response:
        params = validated(SeriesFilterSerializer, request.query_params)
        collection = Collection(params.pop("collection"))
        if not params.get("project_name"):
            raise ValidationFailed("project_name is required", details={"project_name": "required"})
        points = latest_points(collection=collection, where=SeriesFilter(**params))
        rows = [
            {
                **series_tags(p.series),
                "time": p.time,
                "value": p.value,
                "fields": {k: (None if isinstance(v, float) and v != v else v) for k, v in p.fields.items()},
            }
            for p in points
        ]
        return paginated_response(request, self, self.OutputSerializer(rows, many=True).data)


class GroupListApi(APIView):
    """(project, device, batch) groups, most recent first: "batch_91 — last data 5 minutes ago"."""

    permission_classes = [CanView]

    class FilterSerializer(serializers.Serializer):
        class Meta:
            ref_name = "TsdbGroupListFilter"

        collection = collection_field()
        project_name = tag_field(required=False)
        device_id = tag_field(required=False)
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
        responses=page_serializer(OutputSerializer(many=True), "PaginatedTsdbGroupList"),
    )
    def get(self, request: Request) -> Response:
        p = validated(self.FilterSerializer, request.query_params)
        groups = groups_list(
            collection=Collection(p["collection"]),
            project_name=p.get("project_name"),
            device_id=p.get("device_id"),
            since=p.get("since"),
        )
        rows = [
            {
                **group_tags(g.group),
                "first_time": g.first_time,
                "last_time": g.last_time,
                "point_count": g.point_count,
                "variables": list(g.variables),
            }
            for g in groups
        ]
        return paginated_response(request, self, self.OutputSerializer(rows, many=True).data)


class SnapshotListApi(APIView):
    """As-of snapshots of a group's variables after a watermark; incomplete rows carry the reason."""

    permission_classes = [CanView]

    class FilterSerializer(serializers.Serializer):
        class Meta:
            ref_name = "TsdbSnapshotListFilter"

        project_name = tag_field()
        device_id = tag_field()
        batch_id = tag_field()
        variables = serializers.CharField(help_text="Comma-separated observed properties, in model input order.")
        after = serializers.DateTimeField(required=False, help_text="Watermark: rows strictly after this time.")
        until = serializers.DateTimeField(required=False)
        max_age = serializers.FloatField(
            min_value=0, max_value=MAX_SNAPSHOT_AGE_SECONDS, help_text="Seconds an input value stays fresh."
        )
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
        p = validated(self.FilterSerializer, request.query_params)
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
                "time": iso_time(t),
                "values": floats_or_none(snaps.matrix[i]),
                "complete": bool(snaps.complete[i]),
                "reason": snaps.reasons[i],
            }
            for i, t in enumerate(snaps.times_ns.tolist())
        ]
        return Response({"group": group_tags(group), "variables": list(snaps.variables), "rows": rows})


# --- metadata ------------------------------------------------------------------------------------
class MetadataListApi(APIView):
    """Display metadata (unit, display name, decimals) of a project's variables."""

    permission_classes = [CanView]

    class FilterSerializer(serializers.Serializer):
        class Meta:
            ref_name = "TsdbMetadataListFilter"

        project_name = tag_field()
        device_id = tag_field(required=False)

    @extend_schema(
        operation_id="tsdb_metadata_list",
        summary="Variable metadata",
        parameters=[FilterSerializer],
        responses=MetadataSerializer(many=True),
    )
    def get(self, request: Request) -> Response:
        p = validated(self.FilterSerializer, request.query_params)
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
