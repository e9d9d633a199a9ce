"""API routes of the training app, mounted under /api/v1/training/."""

from django.urls import path

from . import apis, governance_apis

urlpatterns = [
    path("options/", apis.TrainingOptionsApi.as_view(), name="training-options"),
    path("runs/", apis.TrainingRunListApi.as_view(), name="training-run-list"),
    path("runs/start/", apis.TrainingRunStartApi.as_view(), name="training-run-start"),
    path("runs/<int:run_id>/", apis.TrainingRunDetailApi.as_view(), name="training-run-detail"),
    path("runs/<int:run_id>/approve/", apis.TrainingRunApproveApi.as_view(), name="training-run-approve"),
    path("runs/<int:run_id>/promote/", apis.TrainingRunPromoteApi.as_view(), name="training-run-promote"),
    path("plans/", governance_apis.TrainingPlanListApi.as_view(), name="training-plan-list"),
    path("plans/create/", governance_apis.TrainingPlanCreateApi.as_view(), name="training-plan-create"),
    path("plans/<int:plan_id>/", governance_apis.TrainingPlanDetailApi.as_view(), name="training-plan-detail"),
    path("plans/<int:plan_id>/update/", governance_apis.TrainingPlanUpdateApi.as_view(), name="training-plan-update"),
    path("plans/<int:plan_id>/delete/", governance_apis.TrainingPlanDeleteApi.as_view(), name="training-plan-delete"),
    path(
        "plans/<int:plan_id>/trigger/", governance_apis.TrainingPlanTriggerApi.as_view(), name="training-plan-trigger"
    ),
    path("challengers/", governance_apis.ChallengerListApi.as_view(), name="training-challenger-list"),
    path(
        "challengers/<int:deployment_id>/",
        governance_apis.ChallengerDetailApi.as_view(),
        name="training-challenger-detail",
    ),
    path(
        "challengers/<int:deployment_id>/review/",
        governance_apis.ChallengerReviewApi.as_view(),
        name="training-challenger-review",
    ),
    path("promotions/", governance_apis.PromotionRequestListApi.as_view(), name="training-promotion-list"),
    path(
        "promotions/<int:request_id>/approve/",
        governance_apis.PromotionRequestApproveApi.as_view(),
        name="training-promotion-approve",
    ),
    path(
        "promotions/<int:request_id>/dismiss/",
        governance_apis.PromotionRequestDismissApi.as_view(),
        name="training-promotion-dismiss",
    ),
    path("bias/<int:deployment_id>/", apis.BiasCorrectionListApi.as_view(), name="training-bias-list"),
    path(
        "bias/<int:deployment_id>/configure/", apis.BiasCorrectionConfigureApi.as_view(), name="training-bias-configure"
    ),
    path("bias/<int:deployment_id>/apply/", apis.BiasCorrectionApplyApi.as_view(), name="training-bias-apply"),
]
