"""API routes of the connectors app, mounted under /api/v1/connectors/."""

from django.urls import path

from . import apis

SOURCE = "sources/<str:data_source_id>/"
PUBLICATION = "publications/<int:publication_id>/"

urlpatterns = [
    path("sources/", apis.DataSourceListApi.as_view(), name="connectors-source-list"),
    path("sources/create/", apis.DataSourceCreateApi.as_view(), name="connectors-source-create"),
    path(SOURCE, apis.DataSourceDetailApi.as_view(), name="connectors-source-detail"),
    path(SOURCE + "update/", apis.DataSourceUpdateApi.as_view(), name="connectors-source-update"),
    path(SOURCE + "delete/", apis.DataSourceDeleteApi.as_view(), name="connectors-source-delete"),
    path(SOURCE + "status/", apis.DataSourceStatusApi.as_view(), name="connectors-source-status"),
    path("publications/", apis.PublicationListApi.as_view(), name="connectors-publication-list"),
    path("publications/create/", apis.PublicationCreateApi.as_view(), name="connectors-publication-create"),
    path(PUBLICATION + "update/", apis.PublicationUpdateApi.as_view(), name="connectors-publication-update"),
    path(PUBLICATION + "delete/", apis.PublicationDeleteApi.as_view(), name="connectors-publication-delete"),
    path("deliveries/", apis.DeliveryListApi.as_view(), name="connectors-delivery-list"),
]
