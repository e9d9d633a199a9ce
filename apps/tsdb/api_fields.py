"""What the time-series API operations share: permissions, tag and collection fields, serializers,
response helpers and limits (``apis`` writes, ``read_apis`` reads)."""

from __future__ import annotations

from typing import Any

import numpy as np
from rest_framework import serializers

from apps.common.errors import ApplicationError
from apps.common.permissions import capability

from .types import (
    POINT_COLLECTIONS,
    SERIES_TAGS,
    Collection,
    GroupKey,
    SeriesKey,
    from_ns,
)
from .validation import MAX_DECIMALS, MAX_DISPLAY_NAME_LENGTH, MAX_TAG_LENGTH, MAX_UNIT_LENGTH

#: Largest CSV upload accepted by the import endpoint.
IMPORT_MAX_BYTES = 100 * 1024 * 1024
#: Largest snapshot ``max_age``: ten years, far beyond any batch, and well inside what a time span in
#: nanoseconds (int64, about 292 years) can hold; larger values answered 500 (OverflowError).
MAX_SNAPSHOT_AGE_SECONDS = 10 * 366 * 86400

CanView = capability("view_process")
CanIngest = capability("ingest_data")
CanAdminister = capability("administer")


class PayloadTooLarge(ApplicationError):
    status_code = 413
    code = "too_large"


def iso_time(ns: int) -> str:
    return from_ns(int(ns)).isoformat().replace("+00:00", "Z")


def floats_or_none(values: np.ndarray) -> list[float | None]:
    return [None if v != v else v for v in values.tolist()]


def validated(serializer_class: type[serializers.Serializer], data: Any) -> dict[str, Any]:
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)


def series_tags(key: SeriesKey) -> dict[str, str]:
    return {tag: getattr(key, tag) for tag in SERIES_TAGS}


def group_tags(group: GroupKey) -> dict[str, str]:
    return {"project_name": group.project_name, "device_id": group.device_id, "batch_id": group.batch_id}


def tag_field(**kwargs: Any) -> serializers.CharField:
    return serializers.CharField(max_length=MAX_TAG_LENGTH, **kwargs)


def collection_field() -> serializers.ChoiceField:
    """A collection that holds points, raw by default."""
    return serializers.ChoiceField(choices=[c.value for c in POINT_COLLECTIONS], default=Collection.RAW.value)


def end_not_before_start(attrs: dict[str, Any]) -> dict[str, Any]:
    """A serializer's ``validate``: an ``end`` before its ``start`` is refused (either may be absent)."""
    if attrs.get("start") is not None and attrs.get("end") is not None and attrs["end"] < attrs["start"]:
        raise serializers.ValidationError({"end": "must not be before start"})
    return attrs


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


class MetadataSerializer(serializers.Serializer):
    class Meta:
        ref_name = "TsdbVariableMetadata"

    project_name = tag_field()
    device_id = tag_field()
    observed_property = tag_field()
    unit = serializers.CharField(max_length=MAX_UNIT_LENGTH, allow_blank=True, default="")
    display_name = serializers.CharField(max_length=MAX_DISPLAY_NAME_LENGTH, allow_blank=True, default="")
    decimals = serializers.IntegerField(min_value=0, max_value=MAX_DECIMALS, default=2)
