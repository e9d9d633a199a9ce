"""Top-level URL map: the portal, the admin, the versioned API and its schema, one include per app."""
from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularSwaggerView

from apps.common.pages import FaviconRedirect
from apps.common.schema_view import CachedSchemaView
from apps.tsdb.influx_apis import LineProtocolWriteV1Api, LineProtocolWriteV2Api

api_v1 = [
    path("", include("apps.common.urls")),
    path("", include("apps.accounts.api_urls")),
    path("tsdb/", include("apps.tsdb.urls")),
    path("registry/", include("apps.registry.urls")),
    path("orchestrator/", include("apps.orchestrator.urls")),
    path("training/", include("apps.training.urls")),
    path("drift/", include("apps.drift.urls")),
    path("connectors/", include("apps.connectors.urls")),
    path("notifications/", include("apps.notifications.urls")),
    path("audit/", include("apps.audit.urls")),
]

urlpatterns = [
    path("favicon.ico", FaviconRedirect.as_view(), name="favicon"),
    path("", include("apps.accounts.urls")),
    path("", include("apps.dashboard.urls")),
    path("training/", include("apps.training.web_urls")),
    path("connectors/", include("apps.connectors.web_urls")),
    path("audit/", include("apps.audit.web_urls")),
    path("notifications/", include("apps.notifications.web_urls")),
    path("admin/", admin.site.urls),
    path("api/v1/", include((api_v1, "api"), namespace="api")),
    path("stamm/", include("apps.registry.stamm_urls")),
    # Open Inference Protocol V2 and MLflow scoring (their clients build these paths; docs/registry.md).
    path("", include("apps.registry.inference_urls")),
    path("registry/", include("apps.registry.web_urls")),
    path("api/schema/", CachedSchemaView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    # django-plotly-dash's endpoints, each behind sign-in, CSRF and shape checks (apps/dashboard/dash_urls.py).
    path("django_plotly_dash/", include("apps.dashboard.dash_urls")),
    # InfluxDB-compatible line-protocol writes (InfluxDB's paths and error shape; see docs/influxdb.md).
    path("api/v2/write", LineProtocolWriteV2Api.as_view(), name="influx-write-v2"),
    path("write", LineProtocolWriteV1Api.as_view(), name="influx-write-v1"),
]
# Uploaded artefacts under MEDIA_ROOT are never served as static files, not even with DEBUG on: they are
# read only through the registry's authenticated, role-checked download views.

admin.site.site_header = "STAMM administration"
admin.site.site_title = "STAMM admin"
