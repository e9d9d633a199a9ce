"""API routes of the training app, mounted under /api/v1/training/."""

from django.urls import path

from . import apis

urlpatterns = [
    path("options/", apis.TrainingOptionsApi.as_view(), name="training-options"),
    path("runs/", apis.TrainingRunListApi.as_view(), name="training-run-list"),
    path("runs/start/", apis.TrainingRunStartApi.as_view(), name="training-run-start"),
    path("runs/<int:run_id>/", apis.TrainingRunDetailApi.as_view(), name="training-run-detail"),
    path("runs/<int:run_id>/approve/", apis.TrainingRunApproveApi.as_view(), name="training-run-approve"),
    path("runs/<int:run_id>/promote/", apis.TrainingRunPromoteApi.as_view(), name="training-run-promote"),
    path("bias/<int:deployment_id>/", apis.BiasCorrectionListApi.as_view(), name="training-bias-list"),
    path(
        "bias/<int:deployment_id>/configure/", apis.BiasCorrectionConfigureApi.as_view(), name="training-bias-configure"
    ),
    path("bias/<int:deployment_id>/apply/", apis.BiasCorrectionApplyApi.as_view(), name="training-bias-apply"),
]
