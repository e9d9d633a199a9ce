"""Which model files a platform process may load, and on what terms: the one place these rules live.

A model file is code as much as data. skops files are loaded by skops' own loader, which builds only
the types it is told to trust; pickles (and joblib) run whatever their author put in them.

skops
    skops trusts, by itself, scikit-learn's estimators and transformers, numpy arrays, dtypes and
    ufuncs and Python's containers and primitives. A file may hold other types only if they are on
    ``SKOPS_EXTRA_TYPES``: the scikit-learn internals that the platform's learners need (tree
    structures, optimisers, kernels, distance metrics), resolved from scikit-learn itself. A file
    naming anything else (``os.system``, ``builtins.eval``, a class of another package) is refused with
    the list of those types, at upload and again before every load, before a byte of it is loaded.
    The stored ``trusted_types`` of an artefact only records what was found; it is never trusted.

pickle / joblib
    Unpickling runs code, so until model files are loaded by isolated runtime workers (issue 14), a
    pickle is loaded only when the server allows it (``REGISTRY_ALLOW_PICKLE``, off by default) and an
    administrator has approved that very file: who, when and its sha256 are recorded, and the loader
    checks the approved sha256 against the file's before unpickling. An uploaded pickle is stored,
    hashed and registered offline, never loaded, until then (``PICKLE_NOTICE`` says so to the uploader).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from django.conf import settings

from apps.common.errors import ValidationFailed

from .artifacts import PYTHON_PICKLE_EXTENSIONS, PYTHON_SKOPS_EXTENSIONS, extension

#: scikit-learn internals that skops does not trust by itself and the platform's learners need.
SKOPS_EXTRA_TYPES = frozenset(
    {
        "sklearn.tree._tree.Tree",
        "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
        "sklearn.neural_network._stochastic_optimizers.AdamOptimizer",
        "sklearn.neural_network._stochastic_optimizers.SGDOptimizer",
        "sklearn.neighbors._kd_tree.KDTree",
        "sklearn.neighbors._ball_tree.BallTree",
    }
)

#: What the upload form, the API and the docs say about accepting a pickle.
PICKLE_NOTICE = (
    "A pickle (.pkl, .pickle, .joblib, .sav) runs the code its author put in it when it is loaded. It is "
    "stored and hashed but not loaded: the version stays offline until an administrator approves this "
    "exact file (its sha256), and then it loads only inside an isolated model runtime worker (no secrets, "
    "no network where bubblewrap is installed). Prefer skops (.skops) or ONNX (.onnx), which load without "
    "running code."
)


class UnsafeArtifact(ValueError):
    """A model file this process must not load; ``types`` lists what a skops file held that is refused."""

    def __init__(self, message: str, types: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.types = types


def is_pickle(name: str) -> bool:
    return extension(name) in PYTHON_PICKLE_EXTENSIONS


def is_skops(name: str) -> bool:
    return extension(name) in PYTHON_SKOPS_EXTENSIONS


@functools.cache
def _scikit_learn_families() -> frozenset[str]:
    """Every kernel of ``sklearn.gaussian_process.kernels`` and every distance metric of
    ``sklearn.metrics``, named as skops names them (classes only: no function is ever trusted; the
    metric that calls a user-supplied Python function is left out)."""
    import inspect  # noqa: PLC0415

    from sklearn.gaussian_process import kernels  # noqa: PLC0415
    from sklearn.metrics import _dist_metrics  # noqa: PLC0415

    names = set()
    for module, base in ((kernels, kernels.Kernel), (_dist_metrics, _dist_metrics.DistanceMetric)):
        for _, value in inspect.getmembers(module, inspect.isclass):
            if issubclass(value, base) and value.__module__ == module.__name__ and "PyFunc" not in value.__name__:
                names.add(f"{value.__module__}.{value.__qualname__}")
    return frozenset(names)


def skops_allowed(type_name: str) -> bool:
    """Whether a type that skops does not trust by itself may be built from an uploaded file."""
    return type_name in SKOPS_EXTRA_TYPES or type_name in _scikit_learn_families()


def skops_types(data: bytes, name: str) -> tuple[str, ...]:
    """The types beyond skops' defaults that a skops file holds, once all of them are known to be allowed.

    Raises ``UnsafeArtifact`` naming every refused type (or saying the file is not skops). Reading the
    type list parses the archive's schema only: nothing is built.
    """
    import skops.io as sio  # noqa: PLC0415

    try:
        found = tuple(sio.get_untrusted_types(data=data))
    except Exception as exc:  # noqa: BLE001 - whatever is not a skops archive
        raise UnsafeArtifact(f"{name}: not a valid skops file ({type(exc).__name__}: {exc})") from exc
    refused = tuple(sorted(t for t in found if not skops_allowed(t)))
    if refused:
        raise UnsafeArtifact(
            f"{name}: refused, it holds type(s) outside the allow-list: {', '.join(refused)} "
            "(scikit-learn estimators and transformers, numpy and the scikit-learn internals they need "
            "are allowed; nothing else is built from an uploaded file)",
            refused,
        )
    return found


def skops_loads(data: bytes, name: str) -> Any:
    """Build the object of a skops file whose types are all allowed (checked here, before loading)."""
    import skops.io as sio  # noqa: PLC0415

    return sio.loads(data, trusted=list(skops_types(data, name)))


def pickle_loading_allowed() -> bool:
    """``REGISTRY_ALLOW_PICKLE``: whether this server unpickles approved model files at all."""
    return bool(getattr(settings, "REGISTRY_ALLOW_PICKLE", False))


def pickle_block_reason(*, sha256: str, approved_sha256: str) -> str | None:
    """Why a pickle with this sha256 must not be loaded now, or None when it may be."""
    if not pickle_loading_allowed():
        return (
            "pickle loading is disabled on this server (REGISTRY_ALLOW_PICKLE is off): a pickle runs code "
            "when loaded; re-save the model with skops, or have the operator allow pickles"
        )
    if not approved_sha256:
        return "awaiting an administrator's approval: loading a pickle runs the code inside it"
    if approved_sha256 != sha256:
        return "the approved sha256 does not match the file: approve this file again"
    return None


def pickle_approver_checked(user: Any) -> Any:
    """``user`` if it may approve pickles (an active administrator), else ``ValidationFailed``."""
    if not (getattr(user, "is_active", False) and user.has_perm("accounts.administer")):
        raise ValidationFailed("Only an administrator may approve a pickle.", details={"user": str(user)})
    return user


def pickle_load_check(*, name: str, sha256: str, approved_sha256: str) -> None:
    """Raise ``UnsafeArtifact`` unless a pickle may be unpickled in this process now."""
    reason = pickle_block_reason(sha256=sha256, approved_sha256=approved_sha256)
    if reason is not None:
        raise UnsafeArtifact(f"{name}: {reason}")


def approval_pending(artifacts: Any) -> bool:
    """Whether any of a version's artefact rows is a pickle not (or no longer) approved as it is.

    Such rows change when an administrator approves them, so per-process caches must not keep them.
    """
    return any(
        is_pickle(artifact.original_name) and artifact.approved_sha256 != artifact.sha256 for artifact in artifacts
    )


@dataclass(frozen=True)
class PickleApproval:
    """What a version's pickle files need before they may load, as the API and the pages show it."""

    required: bool
    #: ``not_needed`` (no pickle), ``disabled`` (REGISTRY_ALLOW_PICKLE off), ``awaiting_approval``, ``approved``.
    state: str
    approved_by: str | None = None
    approved_at: Any = None
    sha256: str | None = None
    notice: str = ""


def pickle_approval(artifacts: Any) -> PickleApproval:
    """The approval state of a version from its artefact rows."""
    pickles = [artifact for artifact in artifacts if is_pickle(artifact.original_name)]
    if not pickles:
        return PickleApproval(required=False, state="not_needed")
    model = next((a for a in artifacts if a.role == "model"), pickles[0])
    approved = not approval_pending(pickles)
    if not pickle_loading_allowed():
        state = "disabled"
    else:
        state = "approved" if approved else "awaiting_approval"
    first = pickles[0]
    return PickleApproval(
        required=True,
        state=state,
        approved_by=first.approved_by.get_username() if approved and first.approved_by_id else None,
        approved_at=first.approved_at if approved else None,
        sha256=model.sha256,
        notice=PICKLE_NOTICE,
    )
