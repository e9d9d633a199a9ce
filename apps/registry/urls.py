"""API routes of the registry app, mounted under /api/v1/registry/."""

from django.urls import path

from . import apis

SS = "projects/<str:project_id>/soft-sensors/<str:model_id>/"
VERSION = SS + "versions/<int:number>/"

urlpatterns = [
    path("projects/", apis.ProjectListApi.as_view(), name="registry-project-list"),
    path("projects/create/", apis.ProjectCreateApi.as_view(), name="registry-project-create"),
    path("projects/import/", apis.ProjectImportApi.as_view(), name="registry-project-import"),
    path("projects/<str:project_id>/", apis.ProjectDetailApi.as_view(), name="registry-project-detail"),
    path("projects/<str:project_id>/update/", apis.ProjectUpdateApi.as_view(), name="registry-project-update"),
    path("projects/<str:project_id>/variables/", apis.VariableListApi.as_view(), name="registry-variable-list"),
    path(
        "projects/<str:project_id>/variables/replace/",
        apis.VariableReplaceApi.as_view(),
        name="registry-variable-replace",
    ),
    path("projects/<str:project_id>/soft-sensors/", apis.SoftSensorListApi.as_view(), name="registry-softsensor-list"),
    path(
        "projects/<str:project_id>/versions/upload/",
        apis.ModelVersionUploadApi.as_view(),
        name="registry-version-upload",
    ),
    path(SS, apis.SoftSensorDetailApi.as_view(), name="registry-softsensor-detail"),
    path(SS + "delete/", apis.SoftSensorDeleteApi.as_view(), name="registry-softsensor-delete"),
    path(SS + "aliases/", apis.AliasListApi.as_view(), name="registry-alias-list"),
    path(SS + "aliases/<slug:alias>/move/", apis.AliasMoveApi.as_view(), name="registry-alias-move"),
    path(SS + "aliases/<slug:alias>/delete/", apis.AliasDeleteApi.as_view(), name="registry-alias-delete"),
    path(SS + "aliases/<slug:alias>/predict/", apis.SoftSensorPredictApi.as_view(), name="registry-predict-alias"),
    path(VERSION, apis.ModelVersionDetailApi.as_view(), name="registry-version-detail"),
    path(VERSION + "status/", apis.ModelVersionStatusApi.as_view(), name="registry-version-status"),
    path(VERSION + "descriptor/", apis.ModelVersionDescriptorUpdateApi.as_view(), name="registry-version-descriptor"),
    path(VERSION + "delete/", apis.ModelVersionDeleteApi.as_view(), name="registry-version-delete"),
    path(VERSION + "download/<str:kind>/", apis.ModelVersionDownloadApi.as_view(), name="registry-version-download"),
    path(VERSION + "predict/", apis.SoftSensorPredictApi.as_view(), name="registry-predict-version"),
]
