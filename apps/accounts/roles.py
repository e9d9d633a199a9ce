"""The four roles and the capabilities each holds: the single source of truth for authorisation."""
from __future__ import annotations

from typing import Final

from apps.common.roles import ADMIN, MANAGER, MODELER, OPERATOR

__all__ = ["ADMIN", "MANAGER", "MODELER", "OPERATOR", "ROLE_CAPABILITIES", "ROLE_LABELS", "ROLE_PRIORITY"]

#: Landing priority when a user holds several roles: the most capable home wins.
ROLE_PRIORITY: Final = (ADMIN, MODELER, MANAGER, OPERATOR)

ROLE_LABELS: Final = {
    OPERATOR: "Operator",
    MODELER: "Modeler",
    MANAGER: "Manager",
    ADMIN: "Administrator",
}

ROLE_CAPABILITIES: Final[dict[str, tuple[str, ...]]] = {
    OPERATOR: ("use_platform", "view_process", "flag_points", "predict"),
    MODELER: (
        "use_platform",
        "view_process",
        "flag_points",
        "predict",
        "ingest_data",
        "manage_models",
        "run_drift",
        "train_models",
        "manage_pipeline",
        "view_audit",
        "sign_records",
    ),
    MANAGER: ("use_platform", "view_process", "view_overview", "view_audit"),
    ADMIN: (
        "use_platform",
        "view_process",
        "flag_points",
        "predict",
        "ingest_data",
        "manage_models",
        "run_drift",
        "train_models",
        "view_overview",
        "manage_pipeline",
        "administer",
        "view_audit",
        "sign_records",
    ),
}
