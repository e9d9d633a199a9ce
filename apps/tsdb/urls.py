"""API routes of the tsdb app, mounted under /api/v1/tsdb/."""

from django.urls import path

from . import apis, read_apis

app_name = "tsdb"

urlpatterns = [
    path("points", apis.PointsApi.as_view(), name="points"),
    path("import", apis.CsvImportApi.as_view(), name="import"),
    path("series", read_apis.SeriesListApi.as_view(), name="series-list"),
    path("series/data", read_apis.SeriesDataApi.as_view(), name="series-data"),
    path("latest", read_apis.LatestPointsApi.as_view(), name="latest"),
    path("groups", read_apis.GroupListApi.as_view(), name="groups"),
    path("snapshots", read_apis.SnapshotListApi.as_view(), name="snapshots"),
    path("metadata", apis.MetadataApi.as_view(), name="metadata"),
]
