"""The names of the four roles. Which capabilities each holds is ``apps.accounts.roles`` (the single source of
truth for authorisation); the names live here because every app labels its home-page links with them, and
domain apps never import ``accounts``."""

from __future__ import annotations

from typing import Final

OPERATOR: Final = "operator"
MODELER: Final = "modeler"
MANAGER: Final = "manager"
ADMIN: Final = "admin"
