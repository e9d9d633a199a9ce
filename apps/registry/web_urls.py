"""Modeler pages of the registry, mounted under /registry/."""

from django.urls import path

from . import views

app_name = "registry"

MODEL = "<str:project_id>/models/<str:model_id>/"
VERSION = MODEL + "v<int:number>/"

urlpatterns = [
    path("", views.project_list, name="projects"),
    path("import/", views.project_import, name="import"),
    path("environments/<str:key>/rebuild/", views.environment_rebuild, name="environment_rebuild"),
    path("<str:project_id>/", views.project_detail, name="project"),
    path("<str:project_id>/import/", views.project_import, name="project_import"),
    path("<str:project_id>/upload/", views.upload, name="upload"),
    path("<str:project_id>/describe/", views.build, name="build"),
    path(MODEL, views.model_detail, name="model"),
    path(MODEL + "alias/", views.move_alias, name="move_alias"),
    path(VERSION + "edit/", views.edit_yaml, name="edit"),
    path(VERSION + "status/", views.set_status, name="status"),
    path(VERSION + "approve-pickle/", views.approve_pickle, name="approve_pickle"),
    path(VERSION + "delete/", views.delete_version, name="delete"),
    path(VERSION + "download/<str:kind>/", views.download, name="download"),
]
