"""What ``django.setup()`` imports: every web, worker and ``manage.py`` process pays for it at start, so the
libraries that cost most to import are left to the code that uses them (docs/architecture.md, "Tests")."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.embedded_db import REPO

#: Costly to import and needed only by some operations: imported where used, never at start-up.
NOT_AT_STARTUP = ("scipy.stats", "sklearn", "shap", "skops", "mlflow", "keras", "onnxruntime")

PROBE = """
import inspect, json, sys
import django
django.setup()
from django_plotly_dash import dash_wrapper
print(json.dumps({"modules": sorted(sys.modules), "inspect_restored": dash_wrapper.inspect is inspect}))
"""


def test_setup_leaves_costly_libraries_to_the_code_that_uses_them():
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "stamm_site.settings.test"}
    env.pop("DATABASE_URL", None)
    out = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=REPO, env=env, capture_output=True, text=True, timeout=120, check=True
    ).stdout
    report = json.loads(out.strip().splitlines()[-1])
    loaded = [name for name in NOT_AT_STARTUP if name in report["modules"]]
    assert not loaded, f"django.setup() imports {loaded}: import them where they are used"
    assert report["inspect_restored"], "the Dash apps' stand-in for inspect was left in django-plotly-dash"
