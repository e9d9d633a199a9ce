"""The dashboard's Dash apps. Importing this package registers every one of them by name, which
``DashboardConfig.ready`` does so that every web worker can serve their callbacks."""

from . import manager, modeler_data, modeler_divergence, modeler_drift, modeler_sensors, modeler_simulation, operator  # noqa: F401

#: Every app name and the capabilities its page and callbacks require (tests walk this).
APP_NAMES = (
    "operator_live",
    "modeler_data",
    "modeler_sensors",
    "modeler_drift",
    "modeler_divergence",
    "modeler_simulation",
    "manager_overview",
    "manager_deployment",
)
