"""``/api/schema/``, generated once per process (apart from ``schema``, which drf-spectacular imports while
it loads its own views)."""
from __future__ import annotations

from typing import Any, ClassVar

from django.core.signals import setting_changed
from django.dispatch import receiver
from drf_spectacular.views import SpectacularAPIView
from rest_framework.response import Response


class CachedSchemaView(SpectacularAPIView):
    """``/api/schema/``: the document is generated once per process and API version, then served from memory.

    It depends only on the code (the whole API is described to every signed-in caller, ``serve_public``), and
    each generation costs about a second of CPU, which any signed-in user could otherwise ask for in a loop.
    A settings change (tests) forgets it.
    """

    generated: ClassVar[dict[Any, dict]] = {}

    def _get_schema_response(self, request):  # drf-spectacular's own, with the document kept
        version = self.api_version or request.version or self._get_version_parameter(request)
        key = (version, self.serve_public)
        if key not in self.generated:
            generator = self.generator_class(urlconf=self.urlconf, api_version=version, patterns=self.patterns)
            self.generated[key] = generator.get_schema(request=request, public=self.serve_public)
        return Response(
            data=self.generated[key],
            headers={"Content-Disposition": f'inline; filename="{self._get_filename(request, version)}"'},
        )


@receiver(setting_changed)
def _schema_forgotten(**kwargs: Any) -> None:
    CachedSchemaView.generated.clear()
