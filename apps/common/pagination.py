"""Page-number pagination with a caller-chosen page size, bounded so no request reads everything.

One way to answer a page and one way to document it, so the schema cannot say "a bare array" where the
API answers ``{"count", "next", "previous", "results"}``: list views return ``paginated_response(...)``
and declare ``responses=page_serializer(ItemSerializer(many=True), "PaginatedXList")``.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from drf_spectacular.utils import inline_serializer
from rest_framework import serializers
from rest_framework.pagination import PageNumberPagination
from rest_framework.request import Request
from rest_framework.response import Response


class StandardPagination(PageNumberPagination):
    page_size = 100
    page_size_query_param = "page_size"
    max_page_size = 1000


def paginated_response(
    request: Request, view: Any, items: Sequence[Any] | Any, serializer: type[serializers.Serializer] | None = None
) -> Response:
    """One page of ``items`` (a queryset or a list); serialized with ``serializer`` when given, else as is."""
    paginator = StandardPagination()
    page = paginator.paginate_queryset(items, request, view=view)
    return paginator.get_paginated_response(serializer(page, many=True).data if serializer else page)


def page_serializer(results: serializers.Serializer, name: str) -> serializers.Serializer:
    """The schema of one page whose ``results`` are ``results`` (a serializer with ``many=True``)."""
    return inline_serializer(
        name=name,
        fields={
            "count": serializers.IntegerField(help_text="Items in every page together."),
            "next": serializers.URLField(allow_null=True, help_text="The next page, or null on the last one."),
            "previous": serializers.URLField(allow_null=True, help_text="The previous page, or null on the first."),
            "results": results,
        },
    )
