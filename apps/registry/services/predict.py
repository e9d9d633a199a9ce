"""Prediction as a service: the one way any caller (REST, STAMM endpoints, the scoring path) runs a model.

``version_predict`` refuses what must not serve (archived versions always; versions that are not online
unless the caller is the training evaluation, which judges candidates before they may go online), runs the
version's runtime on a feature matrix in the spec's order, and records what it learned: that the version
served (the first time only) or that its files no longer load (the version leaves service with the reason).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
from django.utils import timezone

from apps.audit.tracking import audited_update
from apps.common.errors import Conflict, ServiceUnavailable

from ..artifacts import ArtifactIntegrityError
from ..models import ModelVersion, VersionStatus
from ..runtimes import ArtifactLoadError, PredictFailed, RuntimeUnavailable
from ..selectors import version_artifacts
from ..serving import PredictionResult, columns_matrix, feature_matrix, predict_matrix
from ..spec import ModelSpec
from .status import model_version_status_record

#: Versions this process has already recorded as used: the "first prediction" write happens once.
_MARKED: set[tuple[int, Any]] = set()


def model_version_mark_predicted(*, spec: ModelSpec) -> None:
    """Remember that a version served predictions (one write, the first time only)."""
    key = (spec.version_id, spec.created_at)  # ids can be reused after a rollback; the creation time cannot
    if spec.first_predicted_at is not None or key in _MARKED:
        return
    audited_update(
        ModelVersion.objects.filter(pk=spec.version_id, first_predicted_at__isnull=True),
        first_predicted_at=timezone.now(),
    )
    _MARKED.add(key)


def model_version_mark_load_error(*, version_id: int, problem: str) -> None:
    """A version whose files stopped loading (changed on disk, runtime gone) leaves service."""
    model_version_status_record(
        version_id=version_id, status=VersionStatus.LOAD_ERROR, description=f"Load error: {problem}"
    )


def version_servable(*, spec: ModelSpec, allow_offline: bool = False) -> None:
    """Refuse (409, with the version's reason) a version that must not serve, before its inputs are read.

    ``allow_offline`` lets the training evaluation score a candidate that is registered but not yet online;
    a version that failed to load or is archived never serves.
    """
    if spec.archived:
        raise Conflict(f"{spec.title} is archived.", code="archived")
    if not spec.online and not (allow_offline and spec.status == VersionStatus.OFFLINE):
        raise Conflict(
            f"{spec.title} is {spec.status.replace('_', ' ')}: {spec.status_description}",
            details={"status": spec.status, "reason": spec.status_description},
            code="offline",
        )


@contextmanager
def runtime_errors(spec: ModelSpec) -> Iterator[None]:
    """What a runtime's failure means to the caller (predict and explain alike): 503 when the runtime is
    unavailable, 409 when the model raised, 409 and the version leaves service when its files stop loading."""
    try:
        yield
    except RuntimeUnavailable as exc:
        raise ServiceUnavailable(f"{spec.title} cannot be served: {exc}", code="runtime_unavailable") from exc
    except PredictFailed as exc:
        raise Conflict(
            f"{spec.title} failed to predict: {exc}", details={"predict_error": str(exc)}, code="predict_failed"
        ) from exc
    except (ArtifactIntegrityError, ArtifactLoadError) as exc:
        model_version_mark_load_error(version_id=spec.version_id, problem=str(exc))
        raise Conflict(
            f"{spec.title} cannot be loaded: {exc}", details={"load_error": str(exc)}, code="load_error"
        ) from exc


def version_predict(
    *, spec: ModelSpec, X: np.ndarray, ignored: Sequence[str] = (), allow_offline: bool = False
) -> PredictionResult:
    """Predict ``X`` (one row per instance, columns in ``spec.feature_names`` order) with one version.

    The model runs in its runtime worker (never in this process); see ``version_servable`` for who may serve.
    """
    version_servable(spec=spec, allow_offline=allow_offline)
    with runtime_errors(spec):
        artifacts = version_artifacts(version_id=spec.version_id, created_at=spec.created_at)
        result = predict_matrix(spec, X, artifacts=artifacts, ignored=list(ignored))
    if spec.online:
        model_version_mark_predicted(spec=spec)
    return result


def version_predict_body(*, spec: ModelSpec, body: Any) -> PredictionResult:
    """Parse a predict request body (columnar, records or MLflow shapes) for ``spec`` and predict it."""
    version_servable(spec=spec)
    parsed = feature_matrix(body, spec.feature_names)
    return version_predict(spec=spec, X=parsed.X, ignored=parsed.ignored)


def version_predict_columns(*, spec: ModelSpec, columns: Any, where: str) -> PredictionResult:
    """Predict STAMM's ``{feature: value}`` input (one row, or columns of values) for ``spec``."""
    version_servable(spec=spec)
    parsed = columns_matrix(columns, spec.feature_names, where)
    return version_predict(spec=spec, X=parsed.X, ignored=parsed.ignored)
