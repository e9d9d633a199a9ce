"""The package's tests run without the platform: importing Django or the platform's ``apps`` fails here.

``make test`` runs them in their own pytest invocation (``-p no:django``: pytest-django is not loaded);
the finder below makes any ``import django`` / ``import apps`` inside stamm_drift or these tests raise,
so a platform import that slipped into the package fails the suite instead of passing silently.

Tests that need an optional tool (river as the reference for the stream state machines, pandas for
DataFrame input, the IndPenSim batches) use ``_support.require`` / ``_support.indpensim_batch``: they
skip on a developer machine without it and fail in CI (``CI=true``), like the platform's tests.
"""
from __future__ import annotations

import importlib.abc
import sys

FORBIDDEN = ("django", "apps", "stamm_site")


class _NoPlatform(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path=None, target=None):
        if fullname.split(".")[0] in FORBIDDEN:
            raise ImportError(f"stamm_drift's tests must not import {fullname!r}: the package is platform-free")
        return None


_loaded = sorted(m for m in sys.modules if m.split(".")[0] in FORBIDDEN)
if _loaded:
    raise RuntimeError(f"platform modules were imported before stamm_drift's tests started: {_loaded}; "
                       "run them with -p no:django from packages/stamm-drift")
sys.meta_path.insert(0, _NoPlatform())
