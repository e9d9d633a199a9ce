"""Dashboard pages: role homes, and the Dash pages each role reaches (checked on the server)."""

from __future__ import annotations

from collections.abc import Callable

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.text import slugify

from apps.accounts.roles import ROLE_LABELS
from apps.common.errors import ApplicationError
from apps.common.navigation import links_for_role

from .access import MANAGER_PAGE, MODELER_PAGE, OPERATOR_PAGE, capability_required, role_required


@login_required
@role_required
def home(request: HttpRequest, *, role: str) -> HttpResponse:
    links = links_for_role(role=role, user=request.user)
    grouped: dict[str, list] = {}
    for link, url in links:
        grouped.setdefault(link.section, []).append((link, url))
    sections = list(grouped.items())
    return render(
        request,
        "dashboard/home.html",
        {"role": role, "role_label": ROLE_LABELS[role], "sections": sections},
    )


def _dash_page(
    request: HttpRequest, *, app_name: str, title: str, intro: str, role: str, extra: dict | None = None
) -> HttpResponse:
    from . import dash_apps  # noqa: F401  (registers every app in this process)

    context = {"dash_name": app_name, "page_title": title, "intro": intro, "role": role, **(extra or {})}
    return render(request, "dashboard/dash_page.html", context)


def _error_page(request: HttpRequest, exc: ApplicationError, *, role: str, status: int) -> HttpResponse:
    return render(request, "dashboard/error.html", {"message": exc.message, "role": role}, status=status)


def _dash_view(
    *, app_name: str, title: str, intro: str, capabilities: tuple[str, ...], role: str
) -> Callable[[HttpRequest], HttpResponse]:
    """A page that only frames one Dash app: the role is written once, for the check and the page."""

    def view(request: HttpRequest) -> HttpResponse:
        return _dash_page(request, app_name=app_name, title=title, intro=intro, role=role)

    view.__name__ = view.__qualname__ = app_name
    return capability_required(*capabilities, role=role)(view)


operator_live = _dash_view(
    app_name="operator_live",
    title="Live process",
    intro="Soft-sensor estimates with lab samples, the process variables you choose, and whether to trust them.",
    capabilities=OPERATOR_PAGE,
    role="operator",
)
modeler_data = _dash_view(
    app_name="modeler_data",
    title="Data sources",
    intro="Per-batch statistics of every stored variable, with units, and how data arrived over time.",
    capabilities=MODELER_PAGE,
    role="modeler",
)
modeler_sensors = _dash_view(
    app_name="modeler_sensors",
    title="Soft sensors",
    intro="Descriptors, versions and alias history of every soft sensor in the registry.",
    capabilities=MODELER_PAGE,
    role="modeler",
)
modeler_drift = _dash_view(
    app_name="modeler_drift",
    title="Drift analysis",
    intro="Compare a batch window with the same window of reference batches, with any detector of the catalogue.",
    capabilities=MODELER_PAGE,
    role="modeler",
)
modeler_divergence = _dash_view(
    app_name="modeler_divergence",
    title="Model divergence",
    intro="Several versions scored on one batch, overlaid, and every pair compared with seven estimators.",
    capabilities=MODELER_PAGE,
    role="modeler",
)
modeler_simulation = _dash_view(
    app_name="modeler_simulation",
    title="Simulation assessment",
    intro="Run a version over a stored batch, inspect every row against lab samples, export to Excel.",
    capabilities=MODELER_PAGE,
    role="modeler",
)
manager_overview = _dash_view(
    app_name="manager_overview",
    title="Soft-sensor overview",
    intro="Every deployment: status, latest estimate, last pipeline run, lag and lab error.",
    capabilities=MANAGER_PAGE,
    role="manager",
)


@capability_required(*MODELER_PAGE, role="modeler")
def simulation_export(request: HttpRequest) -> HttpResponse:
    """The simulation of ``version`` (an id) over ``batch`` (``project|device|batch``), with the bias update
    unless ``bias=off``, as an Excel workbook: the same simulation the page shows."""
    from .selectors import parse_group
    from .simulation import bias_choice, simulation_assess, simulation_workbook
    from .soft_sensors import version_resolve

    try:
        spec = version_resolve(request.GET.get("version"))
        group = parse_group(request.GET.get("batch"))
        simulation = simulation_assess(spec=spec, group=group, bias=bias_choice(request.GET.get("bias")))
        content = simulation_workbook(simulation=simulation, user=request.user)
    except ApplicationError as exc:
        return _error_page(request, exc, role="modeler", status=exc.status_code)
    name = slugify(f"simulation-{spec.model_id}-v{spec.number}-{group.batch_id}") + ".xlsx"
    response = HttpResponse(content, content_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    return response


@capability_required(*MANAGER_PAGE, role="manager")
def manager_deployment(request: HttpRequest, deployment_id: int) -> HttpResponse:
    from apps.orchestrator.selectors import deployment_get

    try:
        deployment = deployment_get(deployment_id=deployment_id)
    except ApplicationError as exc:
        return _error_page(request, exc, role="manager", status=404)
    return _dash_page(
        request,
        app_name="manager_deployment",
        title=f"Deployment {deployment.name}",
        role="manager",
        intro=deployment.description or f"{deployment.soft_sensor.model_id} {deployment.target_label}",
        extra={"back_url": "dashboard:manager-overview"},
    )
