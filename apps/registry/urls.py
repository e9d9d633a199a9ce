"""API routes of the registry app, mounted under /api/v1/registry/."""

from django.urls import path

from . import apis, environment_apis, explanation_apis, inference_apis, version_apis

SS = "projects/<str:project_id>/soft-sensors/<str:model_id>/"
VERSION = SS + "versions/<int:number>/"

urlpatterns = [
    path("projects/", apis.ProjectListApi.as_view(), name="registry-project-list"),
    path("environments/", environment_apis.EnvironmentListApi.as_view(), name="registry-environment-list"),
    path(
        "environments/<str:key>/", environment_apis.EnvironmentDetailApi.as_view(), name="registry-environment-detail"
    ),
    path(
        "environments/<str:key>/rebuild/",
        environment_apis.EnvironmentRebuildApi.as_view(),
        name="registry-environment-rebuild",
    ),
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
        version_apis.ModelVersionUploadApi.as_view(),
        name="registry-version-upload",
    ),
    path(SS, apis.SoftSensorDetailApi.as_view(), name="registry-softsensor-detail"),
    path(SS + "delete/", apis.SoftSensorDeleteApi.as_view(), name="registry-softsensor-delete"),
    path(SS + "aliases/", apis.AliasListApi.as_view(), name="registry-alias-list"),
    path(SS + "aliases/<slug:alias>/move/", apis.AliasMoveApi.as_view(), name="registry-alias-move"),
    path(SS + "aliases/<slug:alias>/delete/", apis.AliasDeleteApi.as_view(), name="registry-alias-delete"),
    path(
        SS + "aliases/<slug:alias>/predict/",
        inference_apis.SoftSensorPredictApi.as_view(),
        name="registry-predict-alias",
    ),
    path(VERSION, version_apis.ModelVersionDetailApi.as_view(), name="registry-version-detail"),
    path(VERSION + "status/", version_apis.ModelVersionStatusApi.as_view(), name="registry-version-status"),
    path(
        VERSION + "approve-pickle/",
        version_apis.ModelVersionApprovePickleApi.as_view(),
        name="registry-version-approve",
    ),
    path(
        VERSION + "descriptor/",
        version_apis.ModelVersionDescriptorUpdateApi.as_view(),
        name="registry-version-descriptor",
    ),
    path(VERSION + "delete/", version_apis.ModelVersionDeleteApi.as_view(), name="registry-version-delete"),
    path(
        VERSION + "download/<str:kind>/",
        version_apis.ModelVersionDownloadApi.as_view(),
        name="registry-version-download",
    ),
    path(VERSION + "predict/", inference_apis.SoftSensorPredictApi.as_view(), name="registry-predict-version"),
    path(
        VERSION + "explanation/",
        explanation_apis.ModelVersionExplanationApi.as_view(),
        name="registry-version-explanation",
    ),
    path(VERSION + "explain/", explanation_apis.ModelVersionExplainApi.as_view(), name="registry-version-explain"),
]
