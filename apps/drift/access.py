"""Who may act on drift alerts: the one rule the API and the dashboard pages both apply.

Capabilities come from ``apps.accounts.roles``; an action is allowed with ANY of the capabilities listed:

- acknowledge (someone is on it): operators (``flag_points``), modelers (``run_drift``), managers
  (``view_overview``) and administrators;
- resolve by hand, silence and end a silence (decisions about the model's inputs): ``run_drift`` —
  modelers and administrators.

Reading alerts, their history, silences and the status needs ``view_process`` (every role).
"""

from __future__ import annotations

from typing import Any, Final

ALERT_ACTIONS: Final[dict[str, tuple[str, ...]]] = {
    "acknowledge": ("flag_points", "run_drift", "view_overview"),
    "resolve": ("run_drift",),
    "silence": ("run_drift",),
}


def alert_action_allowed(user: Any, action: str) -> bool:
    """Whether ``user`` may ``action`` (a key of ``ALERT_ACTIONS``) drift alerts."""
    if not (user is not None and getattr(user, "is_authenticated", False) and user.is_active):
        return False
    return any(user.has_perm(f"accounts.{codename}") for codename in ALERT_ACTIONS[action])
