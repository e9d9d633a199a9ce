"""The layering of docs/architecture.md is an import-linter contract (``.importlinter``) that ``make test`` runs.

These tests check the contract itself: it holds on the code, and a deliberately forbidden import in a scratch
module (on a copy of the apps, never in the working tree) makes it fail, naming the import.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LINT = Path(sys.executable).with_name("lint-imports")


def lint(cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(cwd)}
    return subprocess.run(
        [str(LINT), str(cwd / ".importlinter"), "--no-cache"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture
def scratch_copy(tmp_path: Path) -> Path:
    """The apps and the contract, copied: a scratch module is added there, never to the real tree."""
    shutil.copytree(ROOT / "apps", tmp_path / "apps", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    shutil.copytree(ROOT / "packages" / "stamm-drift" / "src" / "stamm_drift", tmp_path / "stamm_drift",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))  # PYTHONPATH puts it before the install
    shutil.copy(ROOT / ".importlinter", tmp_path / ".importlinter")
    return tmp_path


def test_the_code_keeps_every_contract():
    result = lint(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "broken" not in result.stdout.lower().replace("0 broken", "")


@pytest.mark.parametrize(
    "module, source, contract",
    [
        ("apps/tsdb/scratch_layering.py", "from apps.registry import selectors\n", "layers"),
        ("apps/drift/scratch_models.py", "from apps.orchestrator.models import Deployment\n", "orchestrator"),
        ("apps/registry/spec_scratch.py", "", "pure"),
        ("stamm_drift/scratch_platform.py", "from django.conf import settings\nfrom apps.drift import models\n",
         "stamm-drift"),
    ],
)
def test_a_forbidden_import_breaks_the_contract(scratch_copy: Path, module: str, source: str, contract: str):
    if contract == "pure":  # the pure spec module may not import Django
        spec = scratch_copy / "apps" / "registry" / "spec.py"
        spec.write_text("from django.db import models\n" + spec.read_text())
    else:
        (scratch_copy / module).write_text(source)
    result = lint(scratch_copy)
    assert result.returncode != 0, result.stdout
    assert "BROKEN" in result.stdout
    if contract == "layers":
        assert "apps.tsdb is not allowed to import apps.registry" in result.stdout
    elif contract == "orchestrator":
        assert "apps.drift is not allowed to import apps.orchestrator.models" in result.stdout
    elif contract == "stamm-drift":
        assert "stamm_drift is not allowed to import django" in result.stdout
        assert "stamm_drift is not allowed to import apps" in result.stdout
    else:
        assert "apps.registry.spec is not allowed to import django" in result.stdout
