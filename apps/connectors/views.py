"""The plant-connectivity page for modelers and admins: what the connectors process reports per source, its
recent errors, where estimates are published and the latest deliveries. Read-only; sources and publications
are edited through the API (``/api/v1/connectors/``) or the admin, under the same service rules.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from apps.common.pages import capability_required

from . import selectors


@capability_required("manage_pipeline", role="modeler")
def connectors_page(request: HttpRequest) -> HttpResponse:
    sources = {s.name: s for s in selectors.data_source_list()}
    rows = [(health, sources.get(health.name)) for health in selectors.source_health()]
    return render(
        request,
        "connectors/page.html",
        {
            "rows": rows,
            "errors": selectors.recent_errors(limit=30),
            "publications": list(selectors.publication_list()),
            "deliveries": list(selectors.delivery_list()[:30]),
        },
    )
