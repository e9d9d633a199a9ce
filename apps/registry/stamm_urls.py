"""Upstream STAMM registry paths (contracts §3), mounted under /stamm/. Trailing slashes are optional."""

from django.urls import re_path

from . import stamm_apis

PID = r"(?P<project_id>P[0-9]{4})"
MID = r"(?P<model_id>[^/]+)"

app_name = "stamm"

urlpatterns = [
    re_path(r"^list_projects/?$", stamm_apis.StammProjectListApi.as_view(), name="list_projects"),
    re_path(rf"^{PID}/project_info/?$", stamm_apis.StammProjectInfoApi.as_view(), name="project_info"),
    re_path(rf"^{PID}/variables/?$", stamm_apis.StammProjectInfoApi.as_view(section="variables"), name="variables"),
    re_path(rf"^{PID}/references/?$", stamm_apis.StammProjectInfoApi.as_view(section="references"), name="references"),
    re_path(rf"^{PID}/list_models/?$", stamm_apis.StammModelListApi.as_view(), name="list_models"),
    re_path(rf"^{PID}/models_full/?$", stamm_apis.StammModelsFullApi.as_view(), name="models_full"),
    re_path(rf"^{PID}/metadata/{MID}/?$", stamm_apis.StammModelMetadataApi.as_view(), name="metadata"),
    re_path(rf"^{PID}/update/{MID}/?$", stamm_apis.StammModelUpdateApi.as_view(), name="update"),
    re_path(rf"^{PID}/predict/{MID}/?$", stamm_apis.StammModelPredictApi.as_view(), name="predict"),
]
