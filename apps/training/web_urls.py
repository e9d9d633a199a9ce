"""Page routes of the training app, mounted under /training/."""

from django.urls import path

from . import governance_views, views

app_name = "training"

urlpatterns = [
    path("", views.train_page, name="page"),
    path("runs/<int:run_id>/", views.run_page, name="run"),
    path("plans/", governance_views.plans_page, name="plans"),
    path("plans/<int:plan_id>/", governance_views.plan_page, name="plan"),
    path("plans/<int:plan_id>/action/", governance_views.plan_action, name="plan-action"),
    path("challengers/", governance_views.challengers_page, name="challengers"),
    path("challengers/<int:deployment_id>/", governance_views.challenger_page, name="challenger"),
    path("challengers/<int:deployment_id>/action/", governance_views.challenger_action, name="challenger-action"),
]
