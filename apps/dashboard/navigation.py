"""Home-page links to the dashboard pages (shown to a role only when it holds the capability)."""

from apps.accounts.roles import ADMIN, MANAGER, MODELER, OPERATOR
from apps.common.navigation import NavLink, register_link

register_link(
    NavLink(
        key="operator-live",
        title="Live process",
        section="Process",
        order=10,
        description="Soft-sensor estimates with lab samples and process variables; trust panel; flag points.",
        url_name="dashboard:operator-live",
        capability="flag_points",
        roles=(OPERATOR, MODELER, ADMIN),
    )
)
register_link(
    NavLink(
        key="modeler-data",
        title="Data sources",
        section="Models and data",
        order=20,
        description="Per-batch mean, min and max of every variable with units; data points over time.",
        url_name="dashboard:modeler-data",
        capability="manage_models",
        roles=(MODELER, ADMIN),
    )
)
register_link(
    NavLink(
        key="modeler-sensors",
        title="Soft sensors",
        section="Models and data",
        order=21,
        description="Descriptor details, versions and alias history of every soft sensor.",
        url_name="dashboard:modeler-sensors",
        capability="manage_models",
        roles=(MODELER, ADMIN),
    )
)
register_link(
    NavLink(
        key="modeler-drift",
        title="Drift analysis",
        section="Models and data",
        order=22,
        description="Pick a detector, variables and a window; verdict, explanation and densities.",
        url_name="dashboard:modeler-drift",
        capability="run_drift",
        roles=(MODELER, ADMIN),
    )
)
register_link(
    NavLink(
        key="modeler-divergence",
        title="Model divergence",
        section="Models and data",
        order=23,
        description="Versions overlaid on a batch; seven disagreement estimators per pair.",
        url_name="dashboard:modeler-divergence",
        capability="manage_models",
        roles=(MODELER, ADMIN),
    )
)
register_link(
    NavLink(
        key="modeler-simulation",
        title="Simulation assessment",
        section="Models and data",
        order=24,
        description="Run a version over a stored batch, filter and flag rows, export to Excel.",
        url_name="dashboard:modeler-simulation",
        capability="manage_models",
        roles=(MODELER, ADMIN),
    )
)
register_link(
    NavLink(
        key="manager-overview",
        title="Soft-sensor overview",
        section="Overview",
        order=5,
        description="Every deployment with a status light, latest estimate, last run, lag and lab error.",
        url_name="dashboard:manager-overview",
        capability="view_overview",
        roles=(MANAGER, ADMIN),
    )
)
register_link(
    NavLink(
        key="admin-deployments",
        title="Deployments",
        section="Administration",
        order=150,
        description="Which soft sensor scores which batches; enable, pin or re-point them.",
        url_name="admin:orchestrator_deployment_changelist",
        capability="administer",
        roles=(ADMIN,),
    )
)
register_link(
    NavLink(
        key="admin-pipeline-runs",
        title="Pipeline runs",
        section="Administration",
        order=160,
        description="Every run of health → detect → infer → store, with timings, counts and errors.",
        url_name="admin:orchestrator_pipelinerun_changelist",
        capability="administer",
        roles=(ADMIN,),
    )
)
register_link(
    NavLink(
        key="admin-flags",
        title="Flagged points",
        section="Administration",
        order=170,
        description="Points people flagged on the dashboards, for review.",
        url_name="admin:dashboard_pointflag_changelist",
        capability="administer",
        roles=(ADMIN,),
    )
)
