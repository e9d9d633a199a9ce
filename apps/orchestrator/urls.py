"""API routes of the orchestrator, mounted under /api/v1/orchestrator/."""

from django.urls import path

from . import apis

DEPLOYMENT = "deployments/<int:deployment_id>/"

urlpatterns = [
    path("deployments/", apis.DeploymentListApi.as_view(), name="orchestrator-deployment-list"),
    path("deployments/create/", apis.DeploymentCreateApi.as_view(), name="orchestrator-deployment-create"),
    path(DEPLOYMENT, apis.DeploymentDetailApi.as_view(), name="orchestrator-deployment-detail"),
    path(DEPLOYMENT + "update/", apis.DeploymentUpdateApi.as_view(), name="orchestrator-deployment-update"),
    path(DEPLOYMENT + "delete/", apis.DeploymentDeleteApi.as_view(), name="orchestrator-deployment-delete"),
    path(DEPLOYMENT + "run/", apis.DeploymentRunApi.as_view(), name="orchestrator-deployment-run"),
    path(DEPLOYMENT + "backfill/", apis.DeploymentBackfillApi.as_view(), name="orchestrator-deployment-backfill"),
    path(DEPLOYMENT + "watermarks/", apis.WatermarkListApi.as_view(), name="orchestrator-watermark-list"),
    path("runs/", apis.RunListApi.as_view(), name="orchestrator-run-list"),
    path("runs/<int:run_id>/", apis.RunDetailApi.as_view(), name="orchestrator-run-detail"),
    path("simulations/", apis.SimulationRunApi.as_view(), name="orchestrator-simulation-run"),
    path("estimates/explanation/", apis.EstimateExplanationApi.as_view(), name="orchestrator-estimate-explanation"),
]
