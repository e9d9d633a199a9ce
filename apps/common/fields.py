"""Serializer fields shared by the APIs, where one bound must hold everywhere."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

#: Largest value a database integer column holds (64-bit). A larger number in a filter or a body made
#: the database driver raise (OverflowError on SQLite, DataError on PostgreSQL): a 500, not a 400.
MAX_DB_INTEGER = 2**63 - 1


def id_field(**kwargs: Any) -> serializers.IntegerField:
    """A row id given by the caller (a filter or a reference): a positive 64-bit integer."""
    return serializers.IntegerField(min_value=1, max_value=MAX_DB_INTEGER, **kwargs)
