from django.urls import path, re_path

from . import views

app_name = "dashboard"

urlpatterns = [
    re_path(r"^home/(?P<role>operator|modeler|manager|admin)/$", views.home, name="home"),
    path("operator/live/", views.operator_live, name="operator-live"),
    path("modeler/data/", views.modeler_data, name="modeler-data"),
    path("modeler/soft-sensors/", views.modeler_sensors, name="modeler-sensors"),
    path("modeler/drift/", views.modeler_drift, name="modeler-drift"),
    path("modeler/divergence/", views.modeler_divergence, name="modeler-divergence"),
    path("modeler/simulation/", views.modeler_simulation, name="modeler-simulation"),
    path("modeler/simulation/export.xlsx", views.simulation_export, name="modeler-simulation-export"),
    path("manager/overview/", views.manager_overview, name="manager-overview"),
    path("manager/deployments/<int:deployment_id>/", views.manager_deployment, name="manager-deployment"),
]
