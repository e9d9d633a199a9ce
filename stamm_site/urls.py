"""Top-level URL map: the portal, the admin, the versioned API and its schema, one include per app."""
from django.conf import settings
from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from apps.tsdb.influx_apis import LineProtocolWriteV1Api, LineProtocolWriteV2Api

api_v1 = [
    path("", include("apps.common.urls")),
    path("", include("apps.accounts.api_urls")),
    path("tsdb/", include("apps.tsdb.urls")),
    path("registry/", include("apps.registry.urls")),
    path("orchestrator/", include("apps.orchestrator.urls")),
    path("training/", include("apps.training.urls")),
    path("drift/", include("apps.drift.urls")),
]

urlpatterns = [
    path("", include("apps.accounts.urls")),
    path("", include("apps.dashboard.urls")),
    path("training/", include("apps.training.web_urls")),
    path("admin/", admin.site.urls),
    path("api/v1/", include((api_v1, "api"), namespace="api")),
    path("stamm/", include("apps.registry.stamm_urls")),
    path("registry/", include("apps.registry.web_urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("django_plotly_dash/", include("django_plotly_dash.urls")),
    # InfluxDB-compatible line-protocol writes (InfluxDB's paths and error shape; see docs/influxdb.md).
    path("api/v2/write", LineProtocolWriteV2Api.as_view(), name="influx-write-v2"),
    path("write", LineProtocolWriteV1Api.as_view(), name="influx-write-v1"),
]

if settings.DEBUG:
    from django.conf.urls.static import static

    urlpatterns += static(settings.MEDIA_URL, document_root=settings.MEDIA_ROOT)

admin.site.site_header = "STAMM administration"
admin.site.site_title = "STAMM admin"
