"""Seed a fresh end-to-end stack (run inside ``manage.py shell``): roles, an admin token, the RF (trained and
pickled by the test process, the file named by ``STAMM_E2E_MODEL``), a deployment.

Prints one JSON line: ``{"token": ..., "deployment": id, "watermark_table": ...}``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from django.contrib.auth import get_user_model

from apps.accounts.services import api_token_create, roles_ensure
from apps.orchestrator.services import deployment_create, service_account_ensure

from .helpers import register_rf


def main() -> None:
    roles_ensure()
    admin = get_user_model().objects.create_superuser("e2e-admin", password=None)  # token only, no password
    _, key = api_token_create(user=admin, name="e2e")
    service_account_ensure()
    version, _ = register_rf(user=admin, pickled=Path(os.environ["STAMM_E2E_MODEL"]).read_bytes())
    deployment = deployment_create(
        user=admin, name="e2e-rf", soft_sensor=version.soft_sensor, alias="production", max_input_age_seconds=600
    )
    print(json.dumps({"token": key, "deployment": deployment.pk}))


main()
