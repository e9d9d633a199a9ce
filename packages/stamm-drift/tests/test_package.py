"""The package stands alone: numpy and scipy are its only third-party imports, the platform is out of reach."""
from __future__ import annotations

import ast
import importlib.metadata
import sys
from pathlib import Path

import pytest
import stamm_drift


def test_importing_the_platform_fails_in_these_tests():
    with pytest.raises(ImportError, match="platform-free"):
        import django  # noqa: F401
    with pytest.raises(ImportError, match="platform-free"):
        import apps.drift  # noqa: F401


def test_the_package_imports_nothing_but_numpy_scipy_and_the_standard_library():
    """Every import statement in the package's source (numpy and scipy may import what they like)."""
    imported: dict[str, set[str]] = {}
    for path in Path(stamm_drift.__file__).parent.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module or ""]
            else:
                continue
            for name in names:
                imported.setdefault(name.split(".")[0], set()).add(path.name)
    third_party = {m: files for m, files in imported.items()
                   if m not in sys.stdlib_module_names and m not in ("__future__", "stamm_drift")}
    assert set(third_party) == {"numpy", "scipy"}, third_party


def test_declared_dependencies_are_numpy_and_scipy():
    requires = importlib.metadata.requires("stamm-drift") or []
    runtime = sorted(r.split(">")[0].split("=")[0].strip() for r in requires if "extra ==" not in r)
    assert runtime == ["numpy", "scipy"]
    assert importlib.metadata.version("stamm-drift") == stamm_drift.__version__


def test_public_api_is_importable_from_the_top():
    for name in stamm_drift.__all__:
        assert getattr(stamm_drift, name) is not None, name
    assert len(stamm_drift.registry()) == 10


def test_the_package_docstring_example_runs():
    import doctest

    assert doctest.testmod(stamm_drift).failed == 0
