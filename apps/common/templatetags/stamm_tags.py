"""Small template helpers shared by every app's templates."""
from typing import Any

from django import template

register = template.Library()


@register.filter
def get_item(mapping: dict, key: Any) -> Any:
    """``{{ mapping|get_item:key }}``: dictionary lookup by a variable key."""
    return mapping.get(key, key)
