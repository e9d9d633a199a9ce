"""``{% audit_history obj %}``: the last changes of one object, with a link to its whole trail."""

from __future__ import annotations

import ast
import json
from typing import Any
from urllib.parse import urlencode

from django import template
from django.urls import reverse

from .. import selectors
from ..tracking import is_audited

register = template.Library()

#: Rows an object page shows; the link opens the whole trail of the object.
SHOWN = 15


@register.inclusion_tag("audit/_history.html", takes_context=True)
def audit_history(context: dict[str, Any], obj: Any, title: str = "") -> dict[str, Any]:
    user = context.get("user") or getattr(context.get("request"), "user", None)
    allowed = bool(user and user.is_authenticated and user.has_perm("accounts.view_audit"))
    if obj is None or not is_audited(type(obj)) or not allowed:
        return {"allowed": False}
    entries = list(selectors.entries_for(obj)[: SHOWN + 1])
    meta = type(obj)._meta
    query = urlencode({"model": f"{meta.app_label}.{meta.model_name}", "object_id": str(obj.pk)})
    return {
        "allowed": True,
        "title": title or f"History of {obj}",
        "rows": [{"entry": e, "action": selectors.ACTION_NAMES.get(e.action, e.action),
                  "changes": selectors.change_rows(e)} for e in entries[:SHOWN]],
        "more": len(entries) > SHOWN,
        "url": reverse("audit:trail") + "?" + query,
    }


@register.filter
def readable_value(value: Any) -> Any:
    """A recorded value as people read it on the pages: a mapping or list (stored as such, or as its text
    ``{}``, ``{'a': 1}``, ``["x"]``) as ``a: 1`` / ``x`` / ``(none)``; anything else unchanged. The export keeps
    the raw value."""
    parsed = value
    if isinstance(value, str):
        text = value.strip()
        if not text.startswith(("{", "[")):
            return value
        try:
            parsed = json.loads(text)
        except ValueError:
            try:
                parsed = ast.literal_eval(text)
            except (ValueError, SyntaxError):
                return value
    if isinstance(parsed, dict):
        return "; ".join(f"{key}: {readable_value(item)}" for key, item in parsed.items()) or "(none)"
    if isinstance(parsed, list | tuple):
        return ", ".join(str(readable_value(item)) for item in parsed) or "(none)"
    return value
