"""Template helpers for the registry pages: render descriptor values of any shape."""

from __future__ import annotations

from typing import Any

from django import template

from ..yaml_io import dump_yaml

register = template.Library()


@register.filter
def kind(value: Any) -> str:
    """``mapping``, ``list`` or ``scalar``, so one recursive template can render any descriptor value."""
    if isinstance(value, dict):
        return "mapping"
    if isinstance(value, list):
        return "list"
    return "scalar"


@register.filter
def as_yaml(value: Any) -> str:
    return dump_yaml(value).strip()


@register.filter
def label(key: str) -> str:
    return str(key).replace("_", " ")


@register.filter
def filesize(size: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return str(size)
